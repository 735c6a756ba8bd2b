#!/bin/sh
# Runs once, when the postgres service initialises its data volume (/docker-entrypoint-initdb.d).
# The roles' passwords are read from the same secret files the services use, so they cannot drift.
set -eu
part() {  # part user|password|db FILE: that part of a postgres://user:password@host:port/db URL
  case "$1" in
    user) sed -E 's#^[a-z]+://([^:@/]+).*#\1#' "$2" ;;
    password) sed -E 's#^[a-z]+://[^:]+:([^@]*)@.*#\1#' "$2" ;;
    db) sed -E 's#.*/([^/?]+)(\?.*)?$#\1#' "$2" ;;
  esac
}
APP=/run/secrets/database_url
OWNER=/run/secrets/database_migrate_url
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner="$(part user "$OWNER")" -v owner_password="$(part password "$OWNER")" \
  -v app="$(part user "$APP")" -v app_password="$(part password "$APP")" -v db="$(part db "$APP")" \
  -f /etc/evalgap/roles.sql
# Label Studio keeps its own database on the same server, under its own role.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v ls_password="$(cat /run/secrets/labelstudio_db_password)" <<'SQL'
SELECT 'CREATE ROLE labelstudio LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'labelstudio') \gexec
ALTER ROLE labelstudio PASSWORD :'ls_password';
SELECT 'CREATE DATABASE labelstudio OWNER labelstudio'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'labelstudio') \gexec
SQL
