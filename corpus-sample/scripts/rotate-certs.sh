#!/usr/bin/env bash
# rotate-certs.sh — manage the acquirer mTLS client certificates of payments-gateway.
#
# See guides/rotating-tls-certificates.md for the full procedure and
# runbooks/tls-certificate-expiry.md for emergencies.
#
# Usage:
#   rotate-certs.sh new-csr <acquirer>
#   rotate-certs.sh install-acquirer <acquirer> <cert.pem>
#   rotate-certs.sh restore-previous <acquirer>
#   rotate-certs.sh check <acquirer>
#
# <acquirer> is one of: lumen, nexipay
# Requires: vault (logged in, policy gateway-certs-admin), openssl >= 3, jq.

set -euo pipefail

readonly MIN_DAYS_VALID=300
readonly SUBJECT="/CN=gateway.acme-payments.com/O=Acme Payments GmbH/C=DE"

die() {
  echo "rotate-certs: $*" >&2
  exit 1
}

vault_path() {
  # Map an acquirer name to its Vault KV path.
  case "$1" in
    lumen)   echo "secret/gateway/acquirer-mtls" ;;
    nexipay) echo "secret/gateway/nexipay-mtls" ;;
    *)       die "unknown acquirer '$1' (expected lumen or nexipay)" ;;
  esac
}

new_csr() {
  # Generate a fresh EC key and CSR and store both under <path>-next.
  local acquirer="$1" path key csr
  path="$(vault_path "$acquirer")"
  key="$(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null)"
  csr="$(openssl req -new -key <(echo "$key") -subj "$SUBJECT")"
  vault kv put "${path}-next" key="$key" csr="$csr" created="$(date -u +%FT%TZ)" >/dev/null
  echo "CSR stored at ${path}-next. Submit it through the ${acquirer} merchant portal:"
  echo "$csr"
}

check_cert() {
  # Print subject, serial and expiry of the certificate currently in use.
  local acquirer="$1" path
  path="$(vault_path "$acquirer")"
  vault kv get -field=cert "$path" | openssl x509 -noout -subject -serial -enddate
}

install_acquirer() {
  # Validate a certificate from the acquirer against the pending key and
  # promote <path>-next to <path>. The previous version stays in Vault's
  # version history and can be restored with restore-previous.
  local acquirer="$1" cert_file="$2" path key cert_mod key_mod
  [[ -r "$cert_file" ]] || die "cannot read $cert_file"
  path="$(vault_path "$acquirer")"
  key="$(vault kv get -field=key "${path}-next")" || die "no pending key at ${path}-next"

  # The certificate must belong to the pending key
  cert_mod="$(openssl x509 -noout -pubkey -in "$cert_file" | openssl sha256)"
  key_mod="$(echo "$key" | openssl pkey -pubout | openssl sha256)"
  [[ "$cert_mod" == "$key_mod" ]] || die "certificate does not match the pending key"

  # And it must be valid long enough (checkend takes seconds)
  if ! openssl x509 -noout -checkend $((MIN_DAYS_VALID * 86400)) -in "$cert_file" >/dev/null; then
    die "certificate expires in less than ${MIN_DAYS_VALID} days; refusing to install"
  fi

  vault kv put "$path" key="$key" cert="$(cat "$cert_file")" \
    installed="$(date -u +%FT%TZ)" contact="$(vault kv get -field=contact "$path")" >/dev/null
  vault kv delete "${path}-next" >/dev/null
  echo "Installed. Now restart the gateway:"
  echo "  kubectl -n gateway rollout restart deploy/payments-gateway"
  check_cert "$acquirer"
}

restore_previous() {
  # Roll the Vault secret back to the version before the current one.
  local acquirer="$1" path current
  path="$(vault_path "$acquirer")"
  current="$(vault kv metadata get -format=json "$path" | jq -r '.data.current_version')"
  (( current > 1 )) || die "no previous version of $path"
  vault kv rollback -version=$((current - 1)) "$path" >/dev/null
  echo "Restored $path to version $((current - 1))."
  check_cert "$acquirer"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    new-csr)          [[ $# -eq 1 ]] || die "usage: new-csr <acquirer>"; new_csr "$1" ;;
    install-acquirer) [[ $# -eq 2 ]] || die "usage: install-acquirer <acquirer> <cert.pem>"; install_acquirer "$1" "$2" ;;
    restore-previous) [[ $# -eq 1 ]] || die "usage: restore-previous <acquirer>"; restore_previous "$1" ;;
    check)            [[ $# -eq 1 ]] || die "usage: check <acquirer>"; check_cert "$1" ;;
    *)                sed -n '2,14p' "$0"; exit 2 ;;
  esac
}

main "$@"
