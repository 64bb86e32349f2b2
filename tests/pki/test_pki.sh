#!/usr/bin/env bash
# tests/pki/test_pki.sh — behaviour of scripts/pki, checked with openssl and a real mosquitto.
# Exit 0 when everything passes; prints "N passed, M failed" as its last line.
set -euo pipefail
export LC_ALL=C

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$HERE/../.." && pwd)
PKI=$ROOT/scripts/pki
unset PLANTGATE_PKI PLANTGATE_CERTS_DIR

T=$(mktemp -d "${TMPDIR:-/tmp}/plantgate-test-pki.XXXXXX")
MOSQ_PID=""
stop_broker() {
    if [[ -n $MOSQ_PID ]]; then
        kill "$MOSQ_PID" 2>/dev/null || true
        wait "$MOSQ_PID" 2>/dev/null || true
        MOSQ_PID=""
    fi
}
cleanup() { stop_broker; rm -rf -- "$T"; }
trap cleanup EXIT

PASS=0 FAIL=0
ok()  { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$1"; }
bad() {
    FAIL=$((FAIL + 1)); printf 'FAIL - %s\n' "$1"
    if [[ -s $T/out ]]; then sed 's/^/       | /' "$T/out" | head -n 20; fi
}
# expect_ok DESC CMD... / expect_fail DESC CMD... : run CMD, output into $T/out
expect_ok()   { local d=$1; shift; if "$@" >"$T/out" 2>&1; then ok "$d"; else bad "$d (exit $?)"; fi; }
expect_fail() { local d=$1; shift; if "$@" >"$T/out" 2>&1; then bad "$d (unexpectedly succeeded)"; else ok "$d"; fi; }
# check DESC CONDITION-CMD... : a plain assertion (output of the last command stays in $T/out)
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
has()   { grep -q -E -- "$1" "$2"; }           # has REGEX FILE
hasnt() { ! grep -q -E -- "$1" "$2"; }

D=$T/pki                       # main PKI
pki() { "$PKI" --dir "$D" "$@"; }
x509() { openssl x509 -noout "$@"; }

# ------------------------------------------------------------------ init ----
expect_ok "init creates a CA" pki init --name "Test Plant Root CA"
x509 -in "$D/ca.crt" -text > "$T/ca.txt"
check "CA: basicConstraints critical CA:TRUE, pathlen:0" \
    grep -A1 -q 'X509v3 Basic Constraints: critical' "$T/ca.txt"
check "CA: pathlen:0" has 'CA:TRUE, pathlen:0' "$T/ca.txt"
check "CA: keyUsage critical keyCertSign,cRLSign" \
    bash -c "grep -A1 'X509v3 Key Usage: critical' '$T/ca.txt' | grep -q 'Certificate Sign, CRL Sign'"
check "CA: ECDSA P-256, SHA-256" bash -c "grep -q 'NIST CURVE: P-256' '$T/ca.txt' && grep -q 'ecdsa-with-SHA256' '$T/ca.txt'"
check "CA: subject from --name" has 'Subject: CN ?= ?Test Plant Root CA' "$T/ca.txt"
check "CA key 0600, private/ 0700" \
    test "$(stat -c %a "$D/private/ca.key")/$(stat -c %a "$D/private")" = "600/700"
check "database files exist" test -f "$D/index.txt" -a -f "$D/serial" -a -f "$D/crlnumber" -a -f "$D/openssl.cnf"
openssl crl -in "$D/crl.pem" -noout -text > "$T/out" 2>&1 || true
check "init creates an empty CRL" has 'No Revoked Certificates' "$T/out"

sum_before=$(sha256sum "$D/ca.crt" "$D/private/ca.key")
expect_fail "second init is refused" pki init
check "second init says how to proceed" has 'already holds a CA.*mv ' "$T/out"
check "second init changed nothing" test "$(sha256sum "$D/ca.crt" "$D/private/ca.key")" = "$sum_before"
expect_fail "commands without a CA are refused" "$PKI" --dir "$T/nothing" list
check "... and say how to create one" has 'init' "$T/out"

# ---------------------------------------------------------------- server ----
expect_ok "server certificate" pki server broker
x509 -in "$D/issued/broker.crt" -subject -ext subjectAltName,extendedKeyUsage > "$T/srv.txt"
check "server: CN, SAN DNS/IP defaults" bash -c "grep -q 'CN *= *broker' '$T/srv.txt' &&
    grep -q 'DNS:broker, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1' '$T/srv.txt'"
check "server: EKU serverAuth" has 'TLS Web Server Authentication' "$T/srv.txt"
expect_ok "server with --dns/--ip" pki server gw.plant.lan --dns gw.plant.lan,gw --ip 192.0.2.7
check "server: --dns/--ip replace the defaults" bash -c "x509() { openssl x509 -noout \"\$@\"; };
    x509 -in '$D/issued/gw.plant.lan.crt' -ext subjectAltName | grep -q 'DNS:gw.plant.lan, DNS:gw, IP Address:192.0.2.7\$'"
expect_fail "server: bad DNS name refused" pki server s2 --dns 'a b'

# ---------------------------------------------------------------- device ----
expect_ok "device certificate" pki device dev-1 --site osaka --line line-3
x509 -in "$D/issued/dev-1.crt" -text > "$T/dev.txt"
check "device: subject L=site, OU=line, CN=ID" has 'Subject: L ?= ?osaka, OU ?= ?line-3, CN ?= ?dev-1$' "$T/dev.txt"
check "device: SAN URI urn:plantgate:device:ID" has '^ +URI:urn:plantgate:device:dev-1$' "$T/dev.txt"
check "device: EKU clientAuth only" bash -c "grep -A1 'Extended Key Usage' '$T/dev.txt' | tail -1 | grep -q '^ *TLS Web Client Authentication$'"
check "device: keyUsage critical digitalSignature" \
    bash -c "grep -A1 'X509v3 Key Usage: critical' '$T/dev.txt' | tail -1 | grep -q '^ *Digital Signature$'"
check "device: CA:FALSE" has 'CA:FALSE' "$T/dev.txt"
check "device: key mode 0600" test "$(stat -c %a "$D/private/dev-1.key")" = 600
check "device: key matches certificate" \
    test "$(openssl pkey -in "$D/private/dev-1.key" -pubout)" = "$(x509 -in "$D/issued/dev-1.crt" -pubkey)"
check "device: .crt holds the leaf only, chain = leaf + CA" \
    test "$(grep -c 'BEGIN CERTIFICATE' "$D/issued/dev-1.crt")/$(grep -c 'BEGIN CERTIFICATE' "$D/issued/dev-1.chain.pem")" = 1/2
expect_ok "device: verifies against the CA (sslclient purpose)" \
    openssl verify -purpose sslclient -CAfile "$D/ca.crt" "$D/issued/dev-1.crt"
expect_fail "re-issuing a valid identity is refused" pki device dev-1
check "... and says to revoke it first" has 'revoke it first with: .*revoke dev-1' "$T/out"

count_issued() { find "$D/issued" -type f | wc -l; }
n_issued=$(count_issued)
long=$(printf 'x%.0s' {1..65})
# shellcheck disable=SC2016  # '$x' is meant literally
for hostile in 'a/b' '+' '#' 'dev#1' 'a+b' '$x' '' "$long" $'a\tb' 'a b' $'a\nb' $'a\x01b' 'é'; do
    expect_fail "hostile identity $(printf %q "$hostile") refused" pki device "$hostile"
    if ! has 'error: .*(identity|not allowed|empty|limit)' "$T/out"; then bad "... with a clear message for $(printf %q "$hostile")"; fi
done
# The identity rule shared with the plugin: tests/vectors/identities.txt is also
# read by tests/unit/test_identity.c, so both sides accept and refuse the same.
V=$T/vectors
"$PKI" --dir "$V" init --name "vectors CA" >"$T/out" 2>&1 || bad "init of the vectors PKI"
while IFS=$'\t' read -r verdict value; do
    [[ $verdict == accept || $verdict == refuse ]] || continue
    vid=$(printf '%b' "$value"; printf x); vid=${vid%x}
    if [[ $verdict == accept ]]; then
        expect_ok "identities.txt: $(printf %q "$vid") accepted" "$PKI" --dir "$V" device "$vid"
    else
        expect_fail "identities.txt: $(printf %q "$vid") refused" "$PKI" --dir "$V" device "$vid"
    fi
done <"$ROOT/tests/vectors/identities.txt"
expect_fail "hostile site refused" pki device dev-x --site 'a/b'
expect_fail "hostile line refused" pki device dev-x --line '#'
expect_ok "64-byte identity accepted" pki device "${long:1}"
check "refused identities created no files" test "$(count_issued)" -eq $((n_issued + 2))

# ---------------------------------------------------------------- bridge ----
expect_ok "bridge certificate" pki bridge br-1
x509 -in "$D/issued/br-1.crt" -ext subjectAltName,extendedKeyUsage > "$T/br.txt"
check "bridge: SAN URI urn:plantgate:bridge:ID, clientAuth" bash -c "grep -q 'URI:urn:plantgate:bridge:br-1' '$T/br.txt' &&
    grep -q 'TLS Web Client Authentication' '$T/br.txt'"

# -------------------------------------------------------------- sign-csr ----
mkdir -p "$T/devside"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/devside/cam.key" 2>/dev/null
openssl req -new -key "$T/devside/cam.key" -subj "/C=JP/O=Evil Corp/CN=cam-1" \
    -addext "subjectAltName=URI:urn:plantgate:bridge:evil" -addext "basicConstraints=critical,CA:TRUE" \
    -out "$T/devside/cam.csr" 2>/dev/null
expect_ok "sign-csr signs a device request" pki sign-csr "$T/devside/cam.csr" --site kobe
x509 -in "$D/issued/cam-1.crt" -text > "$T/cam.txt"
check "sign-csr: certificate matches the request's key" \
    test "$(openssl req -in "$T/devside/cam.csr" -noout -pubkey)" = "$(x509 -in "$D/issued/cam-1.crt" -pubkey)"
check "sign-csr: identity from CN, subject built by the CA" has 'Subject: L ?= ?kobe, CN ?= ?cam-1$' "$T/cam.txt"
check "sign-csr: SAN built by the CA, not copied" bash -c "grep -q 'URI:urn:plantgate:device:cam-1' '$T/cam.txt' && ! grep -q evil '$T/cam.txt'"
check "sign-csr: CA:TRUE from the request ignored" bash -c "grep -q 'CA:FALSE' '$T/cam.txt' && ! grep -q 'CA:TRUE' '$T/cam.txt'"
check "sign-csr: no private key in the PKI" test ! -e "$D/private/cam-1.key"
openssl req -new -key "$T/devside/cam.key" -subj "/CN=a\/b" -out "$T/devside/bad.csr" 2>/dev/null
expect_fail "sign-csr: hostile CN refused" pki sign-csr "$T/devside/bad.csr"
expect_ok "sign-csr: --id overrides the CN" pki sign-csr "$T/devside/bad.csr" --id cam-2
check "sign-csr: --id used as CN" bash -c "openssl x509 -noout -subject -in '$D/issued/cam-2.crt' | grep -q 'CN *= *cam-2\$'"
echo "not a csr" > "$T/devside/junk.csr"
expect_fail "sign-csr: garbage refused" pki sign-csr "$T/devside/junk.csr"

# ----------------------------------------------------------------- batch ----
cat > "$T/devices.csv" <<'EOF'
# hall 2

id,site,line
b-1,osaka,line-1
b-2,osaka
b/3,osaka,line-1
b-4
b-1,osaka,line-1
EOF
printf 'b-5,kobe,line-9\r\n' >> "$T/devices.csv"
expect_fail "batch with a bad line exits 1" pki batch "$T/devices.csv"
check "batch names file:line of the bad line" has 'devices.csv:6: error: .*b/3' "$T/out"
check "batch skips an identity already issued" has 'devices.csv:8: skipped b-1: already issued' "$T/out"
check "batch issued the good lines (incl. CRLF)" \
    test -f "$D/issued/b-1.crt" -a -f "$D/issued/b-2.crt" -a -f "$D/issued/b-4.crt" -a -f "$D/issued/b-5.crt" -a ! -e "$D/issued/b"
check "batch: site/line in the subject" \
    bash -c "openssl x509 -noout -subject -in '$D/issued/b-5.crt' | grep -q 'L *= *kobe, OU *= *line-9, CN *= *b-5'"
printf 'id,site,line\nb-1,osaka,line-1\nb-6,osaka,line-2\n' > "$T/ok.csv"
expect_ok "clean batch exits 0 and skips issued ids" pki batch "$T/ok.csv"
check "... says so" has 'skipped b-1: already issued' "$T/out"
printf 'name,where\nx-1,osaka\n' > "$T/nohdr.csv"
expect_fail "batch without the header is refused" pki batch "$T/nohdr.csv"
check "... naming file:line" has 'nohdr.csv:1: error: expected the header' "$T/out"

# ---------------------------------------------------------- revoke / list ----
expect_ok "device to revoke" pki device dev-2
serial2=$(x509 -serial -in "$D/issued/dev-2.crt"); serial2=${serial2#serial=}
fp2=$(x509 -fingerprint -sha256 -in "$D/issued/dev-2.crt"); fp2=${fp2#*=}; fp2=${fp2//:/}; fp2=${fp2,,}
expect_ok "revoke by identity" pki revoke dev-2 --reason keyCompromise
openssl crl -in "$D/crl.pem" -noout -text > "$T/crl.txt"
check "CRL contains the revoked serial" has "Serial Number: $serial2\$" "$T/crl.txt"
check "CRL carries the reason" has 'Key Compromise' "$T/crl.txt"
check "revoked.txt: comment line" has "^# [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z revoked dev-2 reason=keyCompromise\$" "$D/revoked.txt"
check "revoked.txt: serial line (uppercase hex)" has "^serial $serial2\$" "$D/revoked.txt"
check "revoked.txt: sha256 line (lowercase hex)" has "^sha256 $fp2\$" "$D/revoked.txt"
check "revoked.txt: no 'identity' line (that would ban re-issue)" hasnt '^identity ' "$D/revoked.txt"
check "revoked.txt: block is comment, serial, sha256" bash -c "grep -A2 -E '^# .* revoked dev-2 ' '$D/revoked.txt' |
    sed -n '2s/^serial .*/S/p;3s/^sha256 .*/H/p' | tr -d '\n' | grep -qx SH"
expect_ok "revoking again is a no-op" pki revoke dev-2
check "... and says so" has 'already revoked' "$T/out"
check "... without a second entry" test "$(grep -c "^serial $serial2\$" "$D/revoked.txt")" -eq 1
serial4=$(x509 -serial -in "$D/issued/b-4.crt"); serial4=${serial4#serial=}
expect_ok "revoke by serial" pki revoke "${serial4,,}" --reason superseded
expect_fail "revoke of an unknown identity fails" pki revoke nobody
expect_fail "revoke with a bad reason fails" pki revoke dev-1 --reason because
expect_ok "revoked identity can be issued again" pki device dev-2
expect_ok "device to ban" pki device ban-1
expect_ok "revoke ban-1" pki revoke ban-1
echo "identity ban-1" >> "$D/revoked.txt"
expect_fail "identity banned by hand in revoked.txt is not re-issued" pki device ban-1
check "... and the message says why" has "bans identity 'ban-1'" "$T/out"

pki list > "$T/list.txt" 2>&1 || true
check "list: revoked entry" has "^$serial2 +dev-2 +device +[0-9]{4}-[0-9]{2}-[0-9]{2} +revoked\$" "$T/list.txt"
check "list: new dev-2 valid" has "^[0-9A-F]+ +dev-2 +device +[0-9-]+ +valid\$" "$T/list.txt"
check "list: kinds server/bridge/device" bash -c "grep -Eq '^[0-9A-F]+ +broker +server ' '$T/list.txt' &&
    grep -Eq '^[0-9A-F]+ +br-1 +bridge ' '$T/list.txt' && grep -Eq '^[0-9A-F]+ +cam-1 +device ' '$T/list.txt'"
check "list: revoked by serial" has "^$serial4 +b-4 .* revoked\$" "$T/list.txt"

expect_ok "crl --days 7" pki crl --days 7
nu=$(openssl crl -in "$D/crl.pem" -noout -nextupdate); nu=${nu#*=}
check "crl: next update within 7 days" test $(( $(date -d "$nu" +%s) - $(date +%s) )) -le $((7 * 86400 + 60))

# ------------------------------------------------------- validity window ----
expect_ok "expired certificate via --start/--end" pki device old-1 --start 20200101000000Z --end 20210101000000Z
expect_fail "expired per openssl x509 -checkend 0" x509 -checkend 0 -in "$D/issued/old-1.crt"
pki list > "$T/list.txt" 2>&1 || true
check "list: expired" has '^[0-9A-F]+ +old-1 +device +2021-01-01 +expired$' "$T/list.txt"
expect_ok "not-yet-valid certificate" pki device fut-1 --start 20400101000000Z --end 20410101000000Z
expect_fail "not-yet-valid per openssl verify" openssl verify -CAfile "$D/ca.crt" "$D/issued/fut-1.crt"
check "... because it is not yet valid" has 'not yet valid' "$T/out"
expect_fail "--end before --start refused" pki device w-1 --start 20300101000000Z --end 20200101000000Z
expect_fail "malformed --start refused" pki device w-1 --start 2020-01-01

check "no half-written files left behind" test -z "$(find "$D" -name '.*.new')"

# ------------------------------------------------------------------- RSA ----
D2=$T/pki-rsa
expect_ok "init --rsa" "$PKI" --dir "$D2" init --rsa --name "Second CA"
check "RSA CA: 3072-bit key, sha256WithRSAEncryption" bash -c "openssl x509 -noout -text -in '$D2/ca.crt' |
    grep -q 'Public-Key: (3072 bit)' && openssl x509 -noout -text -in '$D2/ca.crt' | grep -q sha256WithRSAEncryption"
expect_ok "device from the second CA" "$PKI" --dir "$D2" device dev-1
expect_ok "device --rsa" pki device rsa-1 --rsa
check "device --rsa: 3072-bit key" bash -c "openssl x509 -noout -text -in '$D/issued/rsa-1.crt' | grep -q 'Public-Key: (3072 bit)'"
expect_fail "a cert of the second CA does not verify against the first" \
    openssl verify -CAfile "$D/ca.crt" "$D2/issued/dev-1.crt"

# ------------------------------------------------------------- mosquitto ----
if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
    bad "mosquitto and mosquitto_pub/sub are needed: apt-get install mosquitto mosquitto-clients"
else
    expect_ok "device to be revoked while the broker runs" pki device dev-3
    PORT=$(python3 "$ROOT/scripts/free_ports.py" 1) # below the ephemeral range: see there
    cat > "$T/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
listener $PORT 127.0.0.1
cafile $D/ca.crt
certfile $D/issued/broker.chain.pem
keyfile $D/private/broker.key
crlfile $D/crl.pem
require_certificate true
EOF
    start_broker() {
        # timeout: a safety net only (the broker is stopped explicitly), so it
        # must outlast this whole section on a loaded machine.
        timeout 300 mosquitto -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
        MOSQ_PID=$!
        for _ in $(seq 150); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
            kill -0 "$MOSQ_PID" 2>/dev/null || break
            sleep 0.1
        done
        echo "mosquitto did not start:"; tail -n 20 "$T/mosquitto.log"
        return 1
    }
    pub() {   # pub CERT KEY [CAFILE] : publish a retained QoS 1 message
        timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" --cafile "${3:-$D/ca.crt}" \
            --cert "$1" --key "$2" -q 1 -r -t plantgate/test -m "hello $RANDOM"
    }
    rejected() {   # rejected CERT KEY : the TLS handshake fails (and not for a missing file)
        [[ -r $1 && -r $2 ]] || { echo "missing $1 or $2"; return 1; }
        if pub "$1" "$2"; then echo "connection was accepted"; return 1; fi
        return 0
    }
    rejected_after_hup() {   # rejected CERT KEY, once mosquitto has handled the SIGHUP
        # It re-reads the CRL when its main loop gets to the signal: on a loaded
        # machine that can take longer than any fixed sleep, so ask again (bounded).
        local i
        for i in $(seq 20); do
            if rejected "$@"; then return 0; fi
            sleep 0.5
        done
        return 1
    }
    if start_broker > "$T/out" 2>&1; then
        ok "mosquitto starts with the PKI's server cert and crlfile"
        expect_ok "broker accepts a valid device (publish)" pub "$D/issued/dev-1.crt" "$D/private/dev-1.key"
        if timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" --cafile "$D/ca.crt" \
               --cert "$D/issued/b-5.crt" --key "$D/private/b-5.key" \
               -t plantgate/test -C 1 -W 8 > "$T/out" 2>&1 && has '^hello ' "$T/out"; then
            ok "another device receives the message"
        else
            bad "another device receives the message"
        fi
        expect_ok "broker accepts a device cert from sign-csr" pub "$D/issued/cam-1.crt" "$T/devside/cam.key"
        expect_ok "broker accepts an RSA device key" pub "$D/issued/rsa-1.crt" "$D/private/rsa-1.key"
        expect_ok "broker accepts a bridge cert" pub "$D/issued/br-1.crt" "$D/private/br-1.key"
        expect_ok "broker accepts dev-3 before revocation" pub "$D/issued/dev-3.crt" "$D/private/dev-3.key"
        expect_ok "broker rejects a cert revoked before it started" rejected "$D/issued/b-4.crt" "$D/private/b-4.key"
        expect_ok "broker rejects a cert from a second CA" rejected "$D2/issued/dev-1.crt" "$D2/private/dev-1.key"
        expect_ok "broker rejects an expired cert" rejected "$D/issued/old-1.crt" "$D/private/old-1.key"
        expect_ok "broker rejects a not-yet-valid cert" rejected "$D/issued/fut-1.crt" "$D/private/fut-1.key"
        expect_ok "broker rejects its server cert used as a client cert" rejected "$D/issued/broker.crt" "$D/private/broker.key"

        expect_ok "revoke dev-3 while the broker runs" pki revoke dev-3
        stop_broker
        if start_broker > "$T/out" 2>&1; then
            ok "broker restarts"
            expect_ok "after restart: revoked dev-3 rejected" rejected "$D/issued/dev-3.crt" "$D/private/dev-3.key"
            expect_ok "after restart: valid dev-1 still accepted" pub "$D/issued/dev-1.crt" "$D/private/dev-1.key"
            # SIGHUP also re-reads the CRL in mosquitto 2.0.11
            expect_ok "bridge accepted before revocation" pub "$D/issued/br-1.crt" "$D/private/br-1.key"
            expect_ok "revoke br-1" pki revoke br-1 --reason cessationOfOperation
            kill -HUP "$MOSQ_PID"
            expect_ok "after SIGHUP: revoked br-1 rejected" rejected_after_hup "$D/issued/br-1.crt" "$D/private/br-1.key"
            expect_ok "after SIGHUP: valid dev-1 still accepted" pub "$D/issued/dev-1.crt" "$D/private/dev-1.key"
        else
            bad "broker restarts"
        fi
        stop_broker
    else
        bad "mosquitto starts with the PKI's server cert and crlfile"
    fi
fi

# ----------------------------------------------------------- signing-key ----
S=$T/sign
expect_ok "signing-key makes an Ed25519 key" "$PKI" --dir "$S" signing-key bridge-01
check "signing key 0600, private/ 0700" \
    test "$(stat -c %a "$S/private/bridge-01.sign.key")/$(stat -c %a "$S/private")" = "600/700"
check "signing-key prints the public key" has 'BEGIN PUBLIC KEY' "$T/out"
kid=$(openssl pkey -pubin -in "$S/signing/bridge-01.pub" -outform DER | sha256sum | cut -c1-16)
check "signing-key prints the key id (SHA-256 of the SPKI DER, 16 hex)" has "key id: $kid \\(ed25519\\)" "$T/out"
openssl pkey -in "$S/private/bridge-01.sign.key" -noout -text > "$T/sk.txt" 2>&1 || true
check "signing key is Ed25519" has 'ED25519' "$T/sk.txt"
expect_fail "signing-key never overwrites a key" "$PKI" --dir "$S" signing-key bridge-01
check "... and says how to rotate" has 'new NAME' "$T/out"
expect_fail "signing-key refuses a name with '/'" "$PKI" --dir "$S" signing-key 'a/b'
expect_ok "signing-key --ecdsa" "$PKI" --dir "$S" signing-key bridge-01-2 --ecdsa
check "--ecdsa makes a P-256 key" has 'key id: [0-9a-f]{16} \(ecdsa-p256\)' "$T/out"
check "both public keys in signing/ (a key set for rotation)" \
    test "$(ls "$S/signing" | tr '\n' ' ')" = "bridge-01-2.pub bridge-01.pub "

# ---------------------------------------------------- enroll-token / intermediate ----
E=$T/est
expect_ok "init --intermediates" "$PKI" --dir "$E" init --intermediates
openssl x509 -in "$E/ca.crt" -noout -ext basicConstraints > "$T/eca.txt" 2>&1
check "--intermediates: root CA:TRUE, pathlen:1" has 'CA:TRUE, pathlen:1' "$T/eca.txt"
expect_ok "enroll-token prints a token once" "$PKI" --dir "$E" enroll-token press-07 --site osaka --line line-3 --ttl 2h
tok=$(sed -n 2p "$T/out")
check "the token is 40 hex digits" test "${#tok}" = 40
hash=$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)
check "enroll-tokens.txt keeps its SHA-256, never the token" \
    bash -c "grep -q '^token $hash press-07 osaka line-3 [0-9]* unused\$' '$E/enroll-tokens.txt' && ! grep -q '$tok' '$E/enroll-tokens.txt'"
check "enroll-tokens.txt is 0600" test "$(stat -c %a "$E/enroll-tokens.txt")" = 600
expect_ok "a second token for press-07" "$PKI" --dir "$E" enroll-token press-07
check "... replaces the unused one" test "$(grep -c ' press-07 ' "$E/enroll-tokens.txt")" = 1
expect_ok "list shows tokens not used yet" "$PKI" --dir "$E" list
check "... press-07" has '^  press-07 \(until ' "$T/out"
expect_fail "enroll-token refuses a TTL over 30d" "$PKI" --dir "$E" enroll-token press-08 --ttl 31d
expect_fail "enroll-token refuses an identity with '+'" "$PKI" --dir "$E" enroll-token 'press+8'
"$PKI" --dir "$E" device held-1 >/dev/null 2>&1
expect_fail "enroll-token refuses an identity with a valid certificate" "$PKI" --dir "$E" enroll-token held-1
check "... and says to revoke first" has 'revoke first' "$T/out"
expect_ok "intermediate est-1" "$PKI" --dir "$E" intermediate est-1
openssl x509 -in "$E/intermediate/est-1.crt" -noout -ext basicConstraints,extendedKeyUsage > "$T/int.txt" 2>&1
check "intermediate: CA:TRUE, pathlen:0, EKU clientAuth only" \
    bash -c "grep -q 'CA:TRUE, pathlen:0' '$T/int.txt' && grep -q 'TLS Web Client Authentication' '$T/int.txt' && ! grep -q 'Server' '$T/int.txt'"
check "intermediate key 0600" test "$(stat -c %a "$E/private/est-1.intermediate.key")" = 600
expect_ok "openssl verify: intermediate chains to the root" openssl verify -CAfile "$E/ca.crt" "$E/intermediate/est-1.crt"
expect_ok "list" "$PKI" --dir "$E" list
check "list shows the intermediate as kind ca" has '^[0-9A-F]+ +est-1 +ca ' "$T/out"
expect_fail "intermediate refused on a pathlen:0 root" "$PKI" --dir "$D" intermediate est-2
check "... and says why" has 'pathlen:0' "$T/out"

printf '%d passed, %d failed\n' "$PASS" "$FAIL"
(( FAIL == 0 ))
