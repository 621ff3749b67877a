# Sourced by the scripts that run upstream object-storage test suites against nefos:
# builds nefos, starts a cloud without a node in a temporary directory, and gives it the
# accounts those suites expect. Sets `work` (the directory, removed on exit), `url`,
# `nefos` and `admin_password`.
#
# Accounts: project `test` (tester, its administrator; tester3, a reader) and project
# `test2` (tester2, its administrator), each with room for what the suites write.

cargo build --locked -p nefos
nefos="$PWD/target/debug/nefos"

work=$(mktemp -d /tmp/nefos-object-tests.XXXXXX)
cloud_pid=
stop_object_store_cloud() {
    if [ -n "$cloud_pid" ]; then
        kill "$cloud_pid" 2>/dev/null || true
        wait "$cloud_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_object_store_cloud EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$nefos" up --data "$work/data" --listen "127.0.0.1:$port" --no-node \
    --guest-image /nonexistent >"$work/cloud.log" 2>&1 &
cloud_pid=$!
answers() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$url/info" >/dev/null 2>&1
}
for _ in $(seq 300); do
    answers && break
    if ! kill -0 "$cloud_pid" 2>/dev/null; then
        cat "$work/cloud.log" >&2
        exit 1
    fi
    sleep 0.2
done

admin() { "$nefos" admin --data "$work/data" "$@" >/dev/null; }
admin project create test
admin project create test2
admin user create tester --password testing
admin user create tester2 --password testing2
admin user create tester3 --password testing3
admin project add-member test tester --role admin
admin project add-member test2 tester2 --role admin
admin project add-member test tester3 --role reader
# The suites write more than a new project may store by default.
for project in test test2; do
    admin quota set --project "$project" pithos.diskspace 100GiB --member-limit 100GiB
done
admin_password=$(awk '$1 == "admin" { print $2 }' "$work/data/credentials")
