# A small JSON reader for the config drive's meta_data.json, written for busybox awk
# (the guest has no jq or python). It parses the whole document, so it does not depend on
# how the file is laid out, and decodes string escapes (\" \\ \/ \n \uXXXX ...).
#
#   awk -v get=PATH   -f json.awk FILE   prints the value at PATH, without a newline;
#                                        exits 1 if there is none
#   awk -v under=PATH -f json.awk FILE   prints every value below PATH, one per line
#
# PATH joins object keys and array indices with dots: "hostname", "public_keys",
# "keys.0.data".

{ doc = doc $0 "\n" }

END {
    n = length(doc)
    pos = 1
    found = 0
    value("")
    ws()
    if (pos <= n)
        fail("trailing data")
    exit(get != "" && !found)
}

function fail(msg) {
    print "json.awk: " msg " at offset " pos | "cat 1>&2"
    exit 2
}

function ws() {
    while (pos <= n && index(" \t\r\n", substr(doc, pos, 1)))
        pos++
}

function join(path, key) {
    return path == "" ? key : path "." key
}

function emit(path, v) {
    if (get != "" && path == get) {
        printf "%s", v
        found = 1
    }
    if (under != "" && index(path, under ".") == 1)
        print v
}

function value(path,    c) {
    ws()
    c = substr(doc, pos, 1)
    if (c == "{")
        object(path)
    else if (c == "[")
        array(path)
    else if (c == "\"")
        emit(path, str())
    else
        emit(path, literal())
}

function object(path,    key, c) {
    pos++
    ws()
    if (substr(doc, pos, 1) == "}") {
        pos++
        return
    }
    for (;;) {
        ws()
        if (substr(doc, pos, 1) != "\"")
            fail("object key expected")
        key = str()
        ws()
        if (substr(doc, pos, 1) != ":")
            fail("':' expected")
        pos++
        value(join(path, key))
        ws()
        c = substr(doc, pos++, 1)
        if (c == "}")
            return
        if (c != ",")
            fail("',' or '}' expected")
    }
}

function array(path,    i, c) {
    pos++
    ws()
    if (substr(doc, pos, 1) == "]") {
        pos++
        return
    }
    for (i = 0; ; i++) {
        value(join(path, i))
        ws()
        c = substr(doc, pos++, 1)
        if (c == "]")
            return
        if (c != ",")
            fail("',' or ']' expected")
    }
}

# Numbers, true, false and null are passed on as written.
function literal(    start) {
    start = pos
    while (pos <= n && substr(doc, pos, 1) ~ /[-+.0-9A-Za-z]/)
        pos++
    if (pos == start)
        fail("value expected")
    return substr(doc, start, pos - start)
}

function str(    out, c, e, cp, lo) {
    pos++
    out = ""
    for (;;) {
        if (pos > n)
            fail("unterminated string")
        # Plain runs are taken whole: a character at a time is slow under emulation.
        if (match(substr(doc, pos, 256), /^[^"\\]+/)) {
            out = out substr(doc, pos, RLENGTH)
            pos += RLENGTH
            continue
        }
        c = substr(doc, pos++, 1)
        if (c == "\"")
            return out
        if (c != "\\") {
            out = out c
            continue
        }
        e = substr(doc, pos++, 1)
        if (e == "n") out = out "\n"
        else if (e == "t") out = out "\t"
        else if (e == "r") out = out "\r"
        else if (e == "b") out = out sprintf("%c", 8)
        else if (e == "f") out = out sprintf("%c", 12)
        else if (e == "u") {
            cp = hex4()
            # A UTF-16 surrogate pair stands for one code point above U+FFFF.
            if (cp >= 55296 && cp < 56320 && substr(doc, pos, 2) == "\\u") {
                pos += 2
                lo = hex4()
                cp = 65536 + (cp - 55296) * 1024 + (lo - 56320)
            }
            out = out utf8(cp)
        }
        else out = out e
    }
}

function hex4(    i, d, v) {
    v = 0
    for (i = 0; i < 4; i++) {
        d = index("0123456789abcdef", tolower(substr(doc, pos + i, 1)))
        if (!d)
            fail("bad \\u escape")
        v = v * 16 + d - 1
    }
    pos += 4
    return v
}

function utf8(cp) {
    if (cp < 128)
        return sprintf("%c", cp)
    if (cp < 2048)
        return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
    if (cp < 65536)
        return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
    return sprintf("%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64,
        128 + int(cp / 64) % 64, 128 + cp % 64)
}
