//! A VNC client's side of RFB 3.8 up to the server's `ServerInit`, with VNC
//! authentication: enough to prove a console port leads to a guest's screen. Written
//! from RFC 6143 for the tests, apart from the proxy it checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit};

/// What a VNC server says of its screen once a client is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub name: String,
}

/// Connects to `host:port`, authenticates with `password` and reads `ServerInit`; the
/// server's reason when it refuses.
pub fn vnc_login(host: &str, port: u16, password: &str) -> Result<ServerInit, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut stream = TcpStream::connect((host, port)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let mut version = [0u8; 12];
    stream.read_exact(&mut version).map_err(io)?;
    if &version[..4] != b"RFB " {
        return Err(format!("not RFB: {version:?}"));
    }
    stream.write_all(b"RFB 003.008\n").map_err(io)?;
    let mut count = [0u8; 1];
    stream.read_exact(&mut count).map_err(io)?;
    let mut types = vec![0u8; usize::from(count[0])];
    stream.read_exact(&mut types).map_err(io)?;
    if !types.contains(&2) {
        return Err(format!("no VNC authentication among {types:?}"));
    }
    stream.write_all(&[2]).map_err(io)?;
    let mut challenge = [0u8; 16];
    stream.read_exact(&mut challenge).map_err(io)?;
    // The key: the password's first 8 bytes, zero-padded, each byte's bits reversed.
    let mut key = [0u8; 8];
    for (slot, byte) in key.iter_mut().zip(password.bytes()) {
        *slot = byte.reverse_bits();
    }
    let cipher = Des::new(&key.into());
    for block in challenge.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    stream.write_all(&challenge).map_err(io)?;
    let mut result = [0u8; 4];
    stream.read_exact(&mut result).map_err(io)?;
    if result != [0; 4] {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).map_err(io)?;
        let mut reason = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut reason).map_err(io)?;
        return Err(String::from_utf8_lossy(&reason).into_owned());
    }
    // ClientInit: share the desktop.
    stream.write_all(&[1]).map_err(io)?;
    let mut head = [0u8; 24];
    stream.read_exact(&mut head).map_err(io)?;
    let length = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
    let mut name = vec![0u8; length as usize];
    stream.read_exact(&mut name).map_err(io)?;
    Ok(ServerInit {
        width: u16::from_be_bytes([head[0], head[1]]),
        height: u16::from_be_bytes([head[2], head[3]]),
        name: String::from_utf8_lossy(&name).into_owned(),
    })
}
