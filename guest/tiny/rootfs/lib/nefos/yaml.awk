# Reads the few things the tiny guest needs from NoCloud's meta-data and from
# #cloud-config documents: top-level "key: value" scalars and top-level lists of scalars.
# This is not a YAML parser; block scalars, flow lists and anchors are not understood.
#
#   awk -v get=KEY  -f yaml.awk FILE   prints the scalar at KEY (one line); exits 1 if none
#   awk -v list=KEY -f yaml.awk FILE   prints the items of the list at KEY, one per line

function unquote(v,    q) {
    sub(/[ \t]+$/, "", v)
    q = substr(v, 1, 1)
    if (length(v) >= 2 && (q == "\"" || q == "'") && substr(v, length(v), 1) == q) {
        v = substr(v, 2, length(v) - 2)
        if (q == "'")
            gsub(/''/, "'", v)
        else {
            gsub(/\\"/, "\"", v)
            gsub(/\\\\/, "\\", v)
        }
    }
    return v
}

{ sub(/\r$/, "") }

/^[ \t]*(#.*)?$/ { next }

# A list's items may sit at the same indentation as its key.
inlist && /^[ \t]*-([ \t]|$)/ {
    v = $0
    sub(/^[ \t]*-[ \t]*/, "", v)
    print unquote(v)
    next
}

/^[^ \t]/ {
    inlist = 0
    if (!match($0, /^[^:]+:([ \t]|$)/))
        next
    key = substr($0, 1, RLENGTH)
    sub(/:[ \t]*$/, "", key)
    v = substr($0, RLENGTH + 1)
    sub(/^[ \t]+/, "", v)
    if (key == get && v != "") {
        print unquote(v)
        found = 1
    }
    if (key == list && v == "")
        inlist = 1
}

END { exit(get != "" && !found) }
