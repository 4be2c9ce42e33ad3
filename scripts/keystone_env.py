#!/usr/bin/env python3
"""Prepares and serves real keystone instances (PyPI keystone, sqlite) for
novajoin's tests and demo. Run with the venv's python.

  prepare TEMPLATE            keys, database, bootstrap, users (once; reused)
  instance TEMPLATE DIR --provider fernet|jws --public-endpoint URL [--expiration S]
                              a private instance dir: a copy of the database
                              and a keystone.conf using the template's keys
  serve DIR PORT              exec gunicorn on 127.0.0.1:PORT (foreground)

The template's credentials.json names the users it made (test passwords).
Catalog URLs are '$(public_endpoint)s/v3', so every instance advertises the
URL its own keystone.conf names (the tests put a counting proxy there).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

TEMPLATE_VERSION = "1"
USERS = {
    "admin": {"password": "admin-secret", "project": "admin", "roles": ["admin"]},
    # nova's service user, as deployments have it: service + admin in 'service'.
    "nova": {"password": "nova-secret", "project": "service", "roles": ["service", "admin"]},
    # novajoin's own user for token validation: only the 'service' role.
    "novajoin": {"password": "novajoin-secret", "project": "service", "roles": ["service"]},
    # a plain user for negative tests.
    "demo": {"password": "demo-secret", "project": "demo", "roles": ["member"]},
}


def conf_text(base, db, keys, provider, public_endpoint, expiration):
    return f"""[DEFAULT]
public_endpoint = {public_endpoint}
[database]
connection = sqlite:///{db}
[token]
provider = {provider}
expiration = {expiration}
[fernet_tokens]
key_repository = {keys}/fernet-keys
[fernet_receipts]
key_repository = {keys}/fernet-keys
[credential]
key_repository = {keys}/cred-keys
[jwt_tokens]
jws_public_key_repository = {keys}/jws-pub
jws_private_key_repository = {keys}/jws-priv
[cache]
enabled = false
[identity]
password_hash_rounds = 4
[oslo_policy]
enforce_new_defaults = true
enforce_scope = false
"""


def manage(conf, *args, cwd=None):
    exe = os.path.join(os.path.dirname(sys.executable), "keystone-manage")
    subprocess.run([exe, "--config-file", conf, *args], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def populate(conf):
    """Creates projects, users and role assignments through keystone's own
    REST API, served in-process by its WSGI app (no server needed)."""
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
    sys.argv = sys.argv[:1]
    from keystone.server import wsgi
    app = wsgi.initialize_public_application()
    c = app.test_client()

    def call(method, path, token=None, body=None, ok=(200, 201, 204)):
        headers = {"X-Auth-Token": token} if token else {}
        r = c.open(path, method=method, json=body, headers=headers)
        if r.status_code not in ok:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.get_data(as_text=True)}")
        return r

    r = call("POST", "/v3/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": USERS["admin"]["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    tok = r.headers["X-Subject-Token"]
    roles = {x["name"]: x["id"] for x in call("GET", "/v3/roles", tok).get_json()["roles"]}
    projects = {x["name"]: x["id"] for x in call("GET", "/v3/projects", tok).get_json()["projects"]}
    users = {x["name"]: x["id"] for x in call("GET", "/v3/users", tok).get_json()["users"]}
    for name in ("service", "demo"):
        if name not in projects:
            p = call("POST", "/v3/projects", tok, {"project": {"name": name, "domain_id": "default"}})
            projects[name] = p.get_json()["project"]["id"]
    for name, u in USERS.items():
        if name not in users:
            r = call("POST", "/v3/users", tok, {"user": {
                "name": name, "domain_id": "default", "password": u["password"],
                "default_project_id": projects[u["project"]]}})
            users[name] = r.get_json()["user"]["id"]
        for role in u["roles"]:
            call("PUT", f"/v3/projects/{projects[u['project']]}/users/{users[name]}/roles/{roles[role]}", tok)
    return {"users": {n: {"id": users[n], "password": u["password"], "project": u["project"],
                          "project_id": projects[u["project"]], "roles": u["roles"]}
                      for n, u in USERS.items()},
            "projects": projects, "domain_id": "default", "region": "RegionOne"}


def prepare(template):
    template = os.path.abspath(template)
    if os.path.exists(os.path.join(template, "ready")):
        return
    tmp = f"{template}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("fernet-keys", "cred-keys", "jws-pub", "jws-priv"):
        # Private, or keystone warns that its key repository is world readable.
        os.makedirs(os.path.join(tmp, d), mode=0o700)
    db = os.path.join(tmp, "keystone.db")
    conf = os.path.join(tmp, "keystone.conf")
    with open(conf, "w") as f:
        f.write(conf_text(tmp, db, tmp, "fernet", "http://127.0.0.1:5000", 3600))
    owner = ["--keystone-user", "root", "--keystone-group", "root"] if os.geteuid() == 0 else []
    manage(conf, "fernet_setup", *owner)
    manage(conf, "credential_setup", *owner)
    manage(conf, "create_jws_keypair", *owner, cwd=tmp)
    shutil.move(os.path.join(tmp, "private.pem"), os.path.join(tmp, "jws-priv", "private.pem"))
    shutil.move(os.path.join(tmp, "public.pem"), os.path.join(tmp, "jws-pub", "public.pem"))
    manage(conf, "db_sync")
    url = "$(public_endpoint)s/v3"
    manage(conf, "bootstrap", "--bootstrap-password", USERS["admin"]["password"],
           "--bootstrap-region-id", "RegionOne", "--bootstrap-public-url", url,
           "--bootstrap-internal-url", url, "--bootstrap-admin-url", url)
    creds = populate(conf)
    creds["template_version"] = TEMPLATE_VERSION
    with open(os.path.join(tmp, "credentials.json"), "w") as f:
        json.dump(creds, f, indent=1)
    open(os.path.join(tmp, "ready"), "w").close()
    try:
        os.rename(tmp, template)
    except OSError:
        # Another process finished first: use theirs.
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(template, "ready")):
            raise


def instance(template, directory, provider, public_endpoint, expiration):
    template = os.path.abspath(template)
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    db = os.path.join(directory, "keystone.db")
    shutil.copyfile(os.path.join(template, "keystone.db"), db)
    with open(os.path.join(directory, "keystone.conf"), "w") as f:
        f.write(conf_text(directory, db, template, provider, public_endpoint, expiration))
    with open(os.path.join(directory, "novajoin_keystone_wsgi.py"), "w") as f:
        # keystone would parse gunicorn's own flags as its options and exit.
        f.write("import sys\nsys.argv = sys.argv[:1]\n"
                "from keystone.server import wsgi\n"
                "application = wsgi.initialize_public_application()\n")


def serve(directory, port):
    directory = os.path.abspath(directory)
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = os.path.join(directory, "keystone.conf")
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    # One thread: concurrent writers on sqlite fail with "database is locked"
    # (seen as HTTP 500 on concurrent password logins).
    os.execv(gunicorn, [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "1",
                        "--threads", "1", "--timeout", "120", "--chdir", directory,
                        "--pythonpath", directory,
                        "--access-logfile", os.path.join(directory, "access.log"),
                        "novajoin_keystone_wsgi:application"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("template")
    p = sub.add_parser("instance")
    p.add_argument("template")
    p.add_argument("dir")
    p.add_argument("--provider", choices=["fernet", "jws"], default="fernet")
    p.add_argument("--public-endpoint", required=True)
    p.add_argument("--expiration", type=int, default=3600)
    p = sub.add_parser("serve")
    p.add_argument("dir")
    p.add_argument("port", type=int)
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.template)
    elif a.cmd == "instance":
        instance(a.template, a.dir, a.provider, a.public_endpoint, a.expiration)
    else:
        serve(a.dir, a.port)


if __name__ == "__main__":
    main()
