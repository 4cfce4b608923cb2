#!/bin/sh
# The example agent: plain psql against $DATABASE_URL, which the operator's injection points at
# the Agent Warden sidecar (127.0.0.1:15432, no password). It never sees the database password.
# Once: asks to delete a customer (held until an approver decides). Every INTERVAL seconds: reads
# customers and orders (masked) and tries to drop a table (denied). ROUNDS=N stops after N rounds.

if [ -z "${DATABASE_URL:-}" ]; then
  echo "agent: DATABASE_URL is not set, so this pod has no Agent Warden sidecar. Was it created before" >&2
  echo "agent: the AccessPolicy, or is the operator not installed? Restart it once the policy is Ready:" >&2
  echo "agent:   kubectl -n agents rollout restart deploy/support-agent" >&2
  sleep 30
  exit 1
fi

say() {
  printf '\n=== %s\n' "$*"
}

sql() {
  psql "$DATABASE_URL" -X -v ON_ERROR_STOP=1 -c "$1" 2>&1
}

say "asking to delete customer 3: held until an approver decides (kubectl warden approvals list -n agents)"
(sql 'DELETE FROM customers WHERE id = 3' | sed 's/^/[held DELETE] /') &
held=$!

round=0
while :; do
  round=$((round + 1))
  say "round $round: customers (card numbers, SSNs, e-mail addresses, phone numbers and IBANs arrive masked, in notes too)"
  sql 'SELECT id, name, email, phone, card_number, ssn, notes FROM customers ORDER BY id'
  say "round $round: orders"
  sql 'SELECT id, customer_id, total FROM orders ORDER BY id'
  say "round $round: dropping the orders table (denied by rule no-ddl)"
  sql 'DROP TABLE orders'
  if [ -n "${ROUNDS:-}" ] && [ "$round" -ge "$ROUNDS" ]; then
    wait "$held"
    exit 0
  fi
  sleep "${INTERVAL:-30}"
done
