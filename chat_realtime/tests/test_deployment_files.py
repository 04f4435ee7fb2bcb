"""The deployment files (Dockerfile, docker-compose.yml, .env.example) agree with settings.py.

chat_realtime/settings.py is the one module that reads the environment, so the
variables it reads are found by scanning its source; these tests need no
database and no Docker engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "chat_realtime" / "settings.py"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
# How settings.py reads a variable: ENV.get("X"), env["X"], os.environ.get("X"),
# env_bool/env_int/env_float/env_list(env, "X", ...), parse_rate("X", ...), parse_duration("X", ...).
_ENV_READ = re.compile(
    r"(?:"
    rf"\b(?:ENV|env|os\.environ)\s*(?:\.get\(|\[)\s*{_NAME}"
    rf"|\bos\.getenv\(\s*{_NAME}"
    rf"|\benv_(?:bool|int|float|list)\(\s*(?:ENV|env)\s*,\s*{_NAME}"
    rf"|\bparse_(?:rate|duration)\(\s*{_NAME}"
    r")"
)
# ${VAR}, ${VAR:-default}, ${VAR:?error} or $VAR; `$$` is compose's escaped dollar.
_COMPOSE_VAR = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
# A variable line of .env.example, commented out or not: `# NAME=value` or `NAME=value`.
_ENV_EXAMPLE_LINE = re.compile(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def variables_read_by(source: str) -> set[str]:
    return {next(name for name in match.groups() if name) for match in _ENV_READ.finditer(source)}


def settings_variables() -> set[str]:
    return variables_read_by(SETTINGS.read_text())


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict:
    return compose()["services"][name]


def environment_of(name: str) -> dict[str, str | None]:
    """A service's `environment:`, in either the mapping or the list form."""
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        pairs = [item.partition("=") for item in env]
        return {name: value if sep else None for name, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def strings_in(node) -> list[str]:
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in [*strings_in(key), *strings_in(value)]]
    if isinstance(node, list):
        return [text for item in node for text in strings_in(item)]
    return [node] if isinstance(node, str) else []


def interpolated_variables(node) -> set[str]:
    return {a or b for text in strings_in(node) for a, b in _COMPOSE_VAR.findall(text)}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each logical line, continuations joined, comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical, pending = pending + stripped, ""
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


# --- The scanner --------------------------------------------------------------


def test_the_settings_scanner_recognises_every_way_settings_reads_a_variable():
    source = """
        ENV.get("A1", "x"); env.get('A2'); env["A3"]; env['A4']; os.environ.get("A5")
        env_bool(ENV, "A6", True); env_int(env, 'A7', 0); env_list(ENV, "A8", [])
        parse_rate("A9", ENV.get("A9", "5/60")); parse_duration("A10", raw)
        ENVIRONMENT.get("NOT_ME"); settings["NOT_ME_EITHER"]; print("NOPE")
    """
    assert variables_read_by(source) == {f"A{n}" for n in range(1, 11)}


def test_the_settings_scanner_finds_the_core_variables_in_settings():
    found = settings_variables()
    for name in ("DEBUG", "SECRET_KEY", "ACCESS_TOKEN_SECRET", "DB_HOST", "REDIS_HOST", "MONGODB_URL", "VAR_DIR"):
        assert name in found


# --- docker-compose.yml -----------------------------------------------------------


def test_compose_defines_the_web_app_and_its_database_cache_and_message_store():
    assert {"web", "mysql", "redis", "mongo"} <= set(compose()["services"])


def test_compose_web_service_points_at_the_compose_database_cache_and_message_store():
    env = environment_of("web")
    assert env["DB_HOST"] == "mysql"
    assert env["DB_PORT"] == "3306"
    assert env["REDIS_HOST"] == "redis"
    assert env["REDIS_PORT"] == "6379"
    assert re.fullmatch(r"mongodb://mongo(:27017)?/?", env["MONGODB_URL"])


def test_compose_web_environment_only_sets_variables_settings_reads():
    unknown = set(environment_of("web")) - settings_variables()
    assert not unknown, f"web's environment sets variables settings.py never reads: {sorted(unknown)}"


def test_compose_only_interpolates_variables_settings_reads():
    unknown = interpolated_variables(compose()) - settings_variables()
    assert not unknown, f"docker-compose.yml interpolates variables settings.py never reads: {sorted(unknown)}"


def test_compose_database_credentials_are_shared_between_web_and_mysql():
    web, mysql = environment_of("web"), environment_of("mysql")
    assert web["DB_NAME"] == mysql["MYSQL_DATABASE"]
    assert web["DB_USER"] == mysql["MYSQL_USER"]
    assert web["DB_PASSWORD"] == mysql["MYSQL_PASSWORD"]
    assert mysql.get("MYSQL_ROOT_PASSWORD")


def test_compose_default_database_user_is_not_root_which_the_mysql_image_refuses():
    default = re.fullmatch(r"\$\{DB_USER:?-([^}]*)\}", environment_of("mysql")["MYSQL_USER"])
    assert default, "MYSQL_USER should be ${DB_USER:-default}"
    assert default.group(1) not in {"", "root"}


@pytest.mark.parametrize("name", ["web", "mysql", "redis", "mongo"])
def test_compose_service_has_a_healthcheck(name):
    healthcheck = service(name).get("healthcheck")
    if name == "web" and healthcheck is None:
        # The image's own HEALTHCHECK applies.
        assert any(keyword == "HEALTHCHECK" for keyword, _ in final_stage())
        return
    assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable")


def test_compose_backing_service_healthchecks_ask_the_service_itself():
    checks = {name: " ".join(strings_in(service(name)["healthcheck"]["test"])) for name in ("mysql", "redis", "mongo")}
    assert "mysqladmin" in checks["mysql"] and "ping" in checks["mysql"]
    assert "redis-cli" in checks["redis"] and "ping" in checks["redis"]
    assert "mongosh" in checks["mongo"] and "ping" in checks["mongo"]


def test_compose_web_waits_for_healthy_database_cache_and_message_store():
    depends_on = service("web")["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to carry conditions"
    for name in ("mysql", "redis", "mongo"):
        assert depends_on[name]["condition"] == "service_healthy"


def test_compose_web_builds_the_dockerfile_and_scales_behind_the_proxy():
    web = service("web")
    build = web["build"]
    assert (build if isinstance(build, str) else build.get("context", ".")) == "."
    # Publishing a fixed host port would stop `--scale web=N`; the proxy publishes 8000.
    assert "ports" not in web and "8000" in [str(port) for port in web["expose"]]
    assert "8000:80" in [str(port) for port in service("proxy")["ports"]]
    # The bundled proxy is one; .env adds the ones in front of it (a TLS terminator).
    assert environment_of("web")["NUM_PROXIES"] == "${NUM_PROXIES:-1}"


def test_the_proxy_passes_websockets_to_every_web_worker():
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    mount = next(str(v) for v in service("proxy")["volumes"] if "nginx.conf" in str(v))
    assert mount.startswith("./deploy/nginx.conf:")
    assert "proxy_set_header Upgrade $http_upgrade" in config
    assert "web:8000" in config and "resolver 127.0.0.11" in config


def test_compose_web_env_file_is_optional():
    entries = service("web")["env_file"]
    entries = entries if isinstance(entries, list) else [entries]
    dotenv = [entry for entry in entries if isinstance(entry, dict) and entry.get("path") == ".env"]
    assert dotenv and dotenv[0].get("required") is False


def test_compose_keeps_uploaded_media_in_a_named_volume_at_media_root():
    media_root = environment_of("web")["MEDIA_ROOT"]
    mounts = {str(volume).split(":")[1]: str(volume).split(":")[0] for volume in service("web")["volumes"]}
    assert media_root in mounts
    assert mounts[media_root] in (compose().get("volumes") or {})


def test_compose_named_volumes_are_all_declared_at_top_level():
    declared = set(compose().get("volumes") or {})
    for name, definition in compose()["services"].items():
        for volume in definition.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_web_paths_match_the_image_layout():
    env = environment_of("web")
    workdir = [arguments for keyword, arguments in final_stage() if keyword == "WORKDIR"][-1]
    assert env["MEDIA_ROOT"].startswith(workdir.rstrip("/") + "/")


# --- .env.example -------------------------------------------------------------


def test_env_example_documents_every_variable_settings_reads():
    documented = set(_ENV_EXAMPLE_LINE.findall(ENV_EXAMPLE.read_text()))
    missing = settings_variables() - documented
    assert not missing, f".env.example does not mention: {sorted(missing)}"


def test_env_example_mentions_only_variables_settings_reads():
    unknown = set(_ENV_EXAMPLE_LINE.findall(ENV_EXAMPLE.read_text())) - settings_variables()
    assert not unknown, f".env.example mentions variables settings.py never reads: {sorted(unknown)}"


def test_env_example_sets_no_secret_outright():
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
    for name in ("SECRET_KEY", "ACCESS_TOKEN_SECRET", "DB_PASSWORD", "REDIS_PASSWORD", "API_SECRET_KEY"):
        assert not active.get(name), f"{name} should stay commented out in .env.example"


# --- Dockerfile -------------------------------------------------------------------


def test_dockerfile_builds_on_python_311_slim_in_stages():
    images = [arguments.split()[0] for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert len(images) >= 2
    assert all(image.startswith("python:3.11-slim") for image in images)


def test_dockerfile_runs_as_a_non_root_user():
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final stage has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_serves_the_app_with_the_serve_command_after_migrating():
    commands = [arguments for keyword, arguments in final_stage() if keyword in {"CMD", "ENTRYPOINT"}]
    assert commands
    command = commands[-1]
    assert "manage.py serve --host 0.0.0.0" in command
    assert command.index("migrate") < command.index("serve")


def test_dockerfile_bakes_no_secret_into_the_image_environment():
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            assert "SECRET_KEY" not in arguments
            assert "ACCESS_TOKEN_SECRET" not in arguments


def test_dockerfile_collects_static_files_with_debug_off():
    runs = [arguments for keyword, arguments in final_stage() if keyword == "RUN"]
    collect = [run for run in runs if "collectstatic" in run]
    assert collect and "DEBUG=false" in collect[0]
    assert any(keyword == "ENV" and re.search(r"\bDEBUG=false\b", arguments) for keyword, arguments in final_stage())


def test_dockerfile_health_check_asks_healthz_without_curl():
    checks = [arguments for keyword, arguments in final_stage() if keyword == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[0] and "urllib" in checks[0]
    assert ("EXPOSE", "8000") in final_stage()


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for entry in (".env", ".venv", "var", ".git"):
        assert entry in ignored
