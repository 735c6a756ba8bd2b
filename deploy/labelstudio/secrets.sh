# Sourced by Label Studio's image entrypoint (ENV_INJECT_SOURCES): its secrets come from files, as
# evalgap's do, never from docker-compose.yml or the environment of `docker inspect`.
export POSTGRE_PASSWORD="$(cat /run/secrets/labelstudio_db_password)"
export LABEL_STUDIO_PASSWORD="$(cat /run/secrets/label_studio_admin_password)"
export LABEL_STUDIO_USER_TOKEN="$(cat /run/secrets/label_studio_api_key)"
export SECRET_KEY="$(cat /run/secrets/labelstudio_secret_key)"
