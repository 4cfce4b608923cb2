#!/bin/sh
# Runs once, before init.sql, when the postgres image initialises an empty database
# (docker-entrypoint-initdb.d): the role the Agent Warden sidecar logs in as, with the password from
# the Secret crm/crm-db (key agent-password). It owns nothing and gets row privileges only
# (init.sql), so a statement that somehow got past the policy still could not drop or alter a table.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set=pw="$AGENT_PASSWORD" <<'SQL'
CREATE ROLE support_agent LOGIN PASSWORD :'pw';
SQL
