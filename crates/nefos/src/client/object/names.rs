//! Names in three places: container and object names in URLs, object names made from
//! local paths, and local paths made from object names.
//!
//! reqwest parses URLs with the WHATWG rules, which resolve `.` and `..` path segments even
//! when they are percent-encoded (`%2E%2E` is a `..` too). Encoding alone therefore cannot
//! carry an object called `../hello.txt`: `C/%2E%2E/hello.txt` becomes `hello.txt`, a
//! container. Such a name is sent as a single segment instead, its `/` encoded as `%2F`;
//! the server percent-decodes the whole object path, so the name arrives unchanged.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

/// Percent-encodes every byte but the URL-unreserved ones, and `/` when `keep_slash`.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b'/' if keep_slash => out.push('/'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

/// A container name as one URL path segment.
pub fn container_url(name: &str) -> anyhow::Result<String> {
    if name.is_empty() || name.contains('/') || is_dot_segment(name) {
        bail!(
            "{name:?} is not a container name: it must be non-empty, without '/', and not . or .."
        );
    }
    Ok(encode(name, false))
}

/// An object name as URL path segments. Names made only of ordinary segments keep their
/// `/`, so URLs look like the object's path; a name with a `.` or `..` segment becomes a
/// single segment (see the module's comment).
pub fn object_url(name: &str) -> anyhow::Result<String> {
    if name.is_empty() || is_dot_segment(name) {
        bail!("an object called {name:?} cannot be addressed in a URL");
    }
    let keep_slash = !name.split('/').any(is_dot_segment);
    Ok(encode(name, keep_slash))
}

/// `container/object`, relative to an account URL.
pub fn object_path(container: &str, object: &str) -> anyhow::Result<String> {
    Ok(format!(
        "{}/{}",
        container_url(container)?,
        object_url(object)?
    ))
}

/// The object name of a local file: its path as given with `.` and `..` resolved
/// lexically, and whatever is left above the start (a root, leading `..`) dropped, so
/// `../hello.txt` is `hello.txt` and `/tmp/a/../b.txt` is `tmp/b.txt`.
pub fn object_name_of(path: &Path) -> anyhow::Result<String> {
    let mut segments: Vec<&str> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => segments.push(
                part.to_str()
                    .with_context(|| format!("{} is not a UTF-8 path", path.display()))?,
            ),
            Component::ParentDir => {
                segments.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if segments.is_empty() {
        bail!(
            "{} leaves no object name; give one with --name",
            path.display()
        );
    }
    Ok(segments.join("/"))
}

/// Where an object of a container lands under `root`: its name's segments as directories
/// and file, with empty and `.` segments skipped. A name with a `..` segment is refused,
/// so no object, whatever it is called, is written outside `root`.
pub fn local_path_in(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut path = root.to_path_buf();
    let mut any = false;
    for segment in name.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." {
            bail!(
                "{name:?} would land outside {}: it has a '..' segment (download it alone with -o FILE)",
                root.display()
            );
        }
        path.push(segment);
        any = true;
    }
    if !any {
        bail!("{name:?} names no file; download it alone with -o FILE");
    }
    Ok(path)
}

/// The last segment of an object name, as a file name of its own (`-o DIR/`).
pub fn file_name_of(name: &str) -> anyhow::Result<&str> {
    match name.rsplit('/').next() {
        Some(last) if !last.is_empty() && !is_dot_segment(last) => Ok(last),
        _ => bail!("{name:?} does not end in a file name; give -o FILE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_keep_their_slashes() {
        assert_eq!(object_url("a/b c/ü.txt").unwrap(), "a/b%20c/%C3%BC.txt");
        assert_eq!(object_url("a/").unwrap(), "a/");
        assert_eq!(object_url("x%2Fy?z#").unwrap(), "x%252Fy%3Fz%23");
    }

    #[test]
    fn names_with_dot_segments_become_one_segment() {
        assert_eq!(object_url("../hello.txt").unwrap(), "..%2Fhello.txt");
        assert_eq!(object_url("a/./b").unwrap(), "a%2F.%2Fb");
        assert_eq!(object_url("a/..").unwrap(), "a%2F..");
        assert!(object_url("..").is_err());
        assert!(object_url(".").is_err());
        assert!(object_url("").is_err());
    }

    #[test]
    fn encoded_dot_segments_survive_url_parsing() {
        for name in ["../hello.txt", "a/../../b", "./x", "a/.."] {
            let url = reqwest::Url::parse(&format!(
                "http://h/object/v1/AUTH_p/{}",
                object_path("C", name).unwrap()
            ))
            .unwrap();
            let object = url.path().strip_prefix("/object/v1/AUTH_p/C/").unwrap();
            assert_eq!(object.replace("%2F", "/"), name, "{url}");
        }
    }

    #[test]
    fn container_names_are_single_plain_segments() {
        assert_eq!(container_url("my photos").unwrap(), "my%20photos");
        for bad in ["", ".", "..", "a/b"] {
            assert!(container_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_paths_lose_dot_segments_and_roots() {
        let name = |p: &str| object_name_of(Path::new(p)).unwrap();
        assert_eq!(name("../hello.txt"), "hello.txt");
        assert_eq!(name("../../a/b.txt"), "a/b.txt");
        assert_eq!(name("./dir/./x"), "dir/x");
        assert_eq!(name("/tmp/a/../b.txt"), "tmp/b.txt");
        assert_eq!(name("a/../b"), "b");
        assert!(object_name_of(Path::new("..")).is_err());
        assert!(object_name_of(Path::new("/")).is_err());
    }

    #[test]
    fn downloads_stay_under_their_root() {
        let root = Path::new("/target");
        assert_eq!(
            local_path_in(root, "a//./b.txt").unwrap(),
            Path::new("/target/a/b.txt")
        );
        assert_eq!(
            local_path_in(root, "/abs").unwrap(),
            Path::new("/target/abs")
        );
        for bad in ["../../x", "a/../../x", "..", "a/..", "", "/", "./"] {
            assert!(local_path_in(root, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_are_the_last_segment() {
        assert_eq!(file_name_of("a/b/c.txt").unwrap(), "c.txt");
        assert_eq!(file_name_of("../../x").unwrap(), "x");
        for bad in ["a/", "a/..", "..", "."] {
            assert!(file_name_of(bad).is_err(), "{bad:?}");
        }
    }
}
