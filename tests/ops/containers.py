#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Static checks of compose.yaml, Dockerfile and .dockerignore against the code (no
# container engine here): services, environment names, volumes, health, make targets.
"""usage: containers.py ROOT [COMPOSE DOCKERFILE]  (exit 1 with one line per problem)"""
import base64
import glob
import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # Debian's python3-yaml (.ci/deps) when python3 is another build
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

# pkg-config module of the Makefile -> (Debian -dev package, runtime package)
DEBIAN = {
    "rdkafka": ("librdkafka-dev", "librdkafka1"),
    "jansson": ("libjansson-dev", "libjansson4"),
    "uuid": ("uuid-dev", "libuuid1"),
    "sqlite3": ("libsqlite3-dev", "libsqlite3-0"),
    "libmicrohttpd": ("libmicrohttpd-dev", "libmicrohttpd12"),
    "libpq": ("libpq-dev", "libpq5"),
}
REQUIRED_ENV = ("CHOREO_BROKERS", "CHOREO_DATA_DIR", "CHOREO_HTTP_ADDR")


class Checker:
    def __init__(self, root, compose_path, dockerfile_path):
        self.root = root
        self.compose_path = compose_path
        self.dockerfile_path = dockerfile_path
        self.problems = []

    def bad(self, msg):
        self.problems.append(msg)

    # ---- what the code says

    def code_env_names(self):
        names = set()
        for path in glob.glob(os.path.join(self.root, "events", "*.c")):
            with open(path, encoding="utf-8") as f:
                names.update(re.findall(r'"(CHOREO_[A-Z0-9_]+)"', f.read()))
        return names

    def services(self):
        with open(os.path.join(self.root, "schemas", "choreography.json"),
                  encoding="utf-8") as f:
            contract = sorted(json.load(f)["services"])
        dirs = sorted(os.path.basename(p) for p in
                      glob.glob(os.path.join(self.root, "services", "*")) if os.path.isdir(p))
        if dirs and dirs != contract:
            self.bad("services/ (%s) differs from choreography.json (%s)" % (dirs, contract))
        return contract

    def makefile(self):
        with open(os.path.join(self.root, "Makefile"), encoding="utf-8") as f:
            text = f.read()
        targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))
        pkgs = re.search(r"^PKGS\s*:?=\s*(.+)$", text, re.M)
        return targets, (pkgs.group(1).split() if pkgs else [])

    # ---- compose.yaml

    def check_kafka(self, svc):
        image = str(svc.get("image", ""))
        if not image.startswith("apache/kafka:3.9"):
            self.bad("kafka: image %r is not apache/kafka:3.9.x" % image)
        env = svc.get("environment") or {}
        if "controller" not in str(env.get("KAFKA_PROCESS_ROLES", "")):
            self.bad("kafka: not KRaft (KAFKA_PROCESS_ROLES without controller)")
        if any("ZOOKEEPER" in k for k in env):
            self.bad("kafka: ZooKeeper settings in a KRaft setup")
        cid = str(env.get("CLUSTER_ID", ""))
        try:
            ok = len(base64.urlsafe_b64decode(cid + "==")) == 16 and len(cid) == 22
        except ValueError:
            ok = False
        if not ok:
            self.bad("kafka: CLUSTER_ID %r is not a base64 UUID (22 chars)" % cid)
        if not svc.get("healthcheck"):
            self.bad("kafka: no healthcheck")
        return str(env.get("KAFKA_ADVERTISED_LISTENERS", ""))

    def check_postgres(self, svc):
        image = str(svc.get("image", ""))
        if not re.match(r"postgres:1[5-9]", image):
            self.bad("postgres: image %r is not the official postgres:15+" % image)
        if not svc.get("healthcheck"):
            self.bad("postgres: no healthcheck")
        env = svc.get("environment") or {}
        user, pw, db = (env.get(k) for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
        if not (user and pw and db):
            self.bad("postgres: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB needed")
        return "postgresql://%s:%s@postgres:5432/%s" % (user, pw, db)

    def check_store(self, name, svc, env, pg_uri):
        store = str(env.get("CHOREO_STORE", "sqlite"))
        if store == "sqlite":
            if int((svc.get("deploy") or {}).get("replicas", 1)) > 1:
                self.bad("%s: replicas on SQLite stores (they split state)" % name)
            return
        if pg_uri is None or store != pg_uri:
            self.bad("%s: CHOREO_STORE %r is not the compose postgres (%s)" % (name, store, pg_uri))
        dep = svc.get("depends_on") or {}
        if not isinstance(dep, dict) or (dep.get("postgres") or {}).get("condition") != "service_healthy":
            self.bad("%s: does not wait for a healthy postgres" % name)
        ports = [str(p) for p in svc.get("ports") or []]
        replicas = int((svc.get("deploy") or {}).get("replicas", 1))
        for p in ports:
            host = p.rsplit(":", 1)[0].rpartition(":")[2]
            lo, _, hi = host.partition("-")
            if replicas > 1 and (not hi or int(hi) - int(lo) + 1 < replicas):
                self.bad("%s: %d replicas need a host port range, not %s" % (name, replicas, p))

    def check_service(self, name, svc, code_env, advertised, top_volumes, seen_volumes):
        build = svc.get("build") or {}
        if build.get("dockerfile", "Dockerfile") != "Dockerfile" or build.get("target") != "runtime":
            self.bad("%s: not built from Dockerfile target runtime" % name)
        cmd = svc.get("command") or []
        if not cmd or cmd[0] != name:
            self.bad("%s: command %r does not run the %s binary" % (name, cmd, name))
        env = svc.get("environment") or {}
        if not isinstance(env, dict):
            self.bad("%s: environment must be a mapping" % name)
            env = {}
        for k in env:
            if k not in code_env and not k.startswith("CHOREO_KAFKA_"):
                self.bad("%s: environment %s is not read by the code" % (name, k))
        for k in REQUIRED_ENV:
            if not env.get(k):
                self.bad("%s: environment %s missing" % (name, k))
        brokers = str(env.get("CHOREO_BROKERS", ""))
        for b in filter(None, brokers.split(",")):
            if "//" + b not in advertised:
                self.bad("%s: CHOREO_BROKERS %s is not an advertised kafka listener" % (name, b))
        port = str(env.get("CHOREO_HTTP_ADDR", "")).rpartition(":")[2]
        test = " ".join(str(t) for t in (svc.get("healthcheck") or {}).get("test", []))
        if not port or ":%s/healthz" % port not in test:
            self.bad("%s: healthcheck does not GET /healthz on port %s" % (name, port))
        dep = (svc.get("depends_on") or {}).get("kafka") if isinstance(
            svc.get("depends_on"), dict) else None
        if not dep or dep.get("condition") != "service_healthy":
            self.bad("%s: does not wait for a healthy kafka" % name)
        data_dir = env.get("CHOREO_DATA_DIR")
        vols = [str(v).split(":") for v in svc.get("volumes") or []]
        mine = [v[0] for v in vols if len(v) >= 2 and v[1] == data_dir]
        if len(mine) != 1:
            self.bad("%s: no volume mounted at its data dir %s" % (name, data_dir))
        for v in mine:
            if v in seen_volumes:
                self.bad("%s: volume %s shared with %s" % (name, v, seen_volumes[v]))
            seen_volumes[v] = name
            if v not in top_volumes:
                self.bad("%s: volume %s not declared" % (name, v))

    def check_compose(self):
        try:
            with open(self.compose_path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            self.bad("compose.yaml does not parse: %s" % e)
            return
        svcs = doc.get("services") or {}
        if "kafka" not in svcs:
            self.bad("compose.yaml: no kafka service")
            return
        advertised = self.check_kafka(svcs["kafka"])
        pg_uri = self.check_postgres(svcs["postgres"]) if "postgres" in svcs else None
        code_env = self.code_env_names()
        seen = {}
        for name in self.services():
            if name not in svcs:
                self.bad("compose.yaml: service %s missing" % name)
                continue
            self.check_service(name, svcs[name], code_env, advertised,
                               doc.get("volumes") or {}, seen)
            self.check_store(name, svcs[name], svcs[name].get("environment") or {}, pg_uri)
        for name in svcs:
            if name not in ("kafka", "postgres") and name not in self.services():
                self.bad("compose.yaml: %s is not a choreo service" % name)

    # ---- Dockerfile

    def stages(self):
        with open(self.dockerfile_path, encoding="utf-8") as f:
            text = re.sub(r"\\\n", " ", f.read())
        stages, cur = {}, None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
            if m:
                cur = m.group(2) or "stage%d" % len(stages)
                stages[cur] = {"from": m.group(1), "lines": []}
            elif cur:
                stages[cur]["lines"].append(line)
        return stages

    def check_dockerfile(self):
        targets, pkgs = self.makefile()
        st = self.stages()
        for need in ("build", "test", "runtime"):
            if need not in st:
                self.bad("Dockerfile: no stage %s" % need)
        if any(n in st for n in ("build", "test", "runtime")) is False:
            return
        for name, s in st.items():
            if s["from"] not in st and not s["from"].startswith("debian:bookworm"):
                self.bad("Dockerfile: stage %s is FROM %s, not Debian bookworm" % (name, s["from"]))
        made = {}
        for name, s in st.items():
            for line in s["lines"]:
                for t in re.findall(r"\bmake\s+([A-Za-z][\w-]*)", line):
                    made.setdefault(name, []).append(t)
                    if t not in targets:
                        self.bad("Dockerfile: stage %s runs make %s, no such target" % (name, t))
        if "all" not in made.get("build", []):
            self.bad("Dockerfile: build stage does not run make all")
        if "check" not in made.get("test", []):
            self.bad("Dockerfile: test stage does not run make check")
        build = " ".join(st.get("build", {}).get("lines", []))
        runtime = " ".join(st.get("runtime", {}).get("lines", []))
        for p in pkgs:
            dev, run = DEBIAN.get(p, (None, None))
            if dev is None:
                self.bad("Dockerfile check: no Debian mapping for pkg-config module %s" % p)
                continue
            if not re.search(r"\b%s\b" % re.escape(dev), build):
                self.bad("Dockerfile: build stage lacks %s (for %s)" % (dev, p))
            if not re.search(r"\b%s\b" % re.escape(run), runtime):
                self.bad("Dockerfile: runtime stage lacks %s (for %s)" % (run, p))
        for line in st.get("build", {}).get("lines", []):
            m = re.match(r"COPY\s+(?!--)(\S+)", line)
            if m and not os.path.exists(os.path.join(self.root, m.group(1))):
                self.bad("Dockerfile: COPY %s: no such path" % m.group(1))
        users = re.findall(r"\bUSER\s+(\S+)", runtime)
        if not users or users[-1] in ("root", "0"):
            self.bad("Dockerfile: runtime stage runs as root")
        if not re.search(r"HEALTHCHECK.*?/healthz", runtime):
            self.bad("Dockerfile: runtime stage has no /healthz healthcheck")
        if "COPY --from=build /src/build/bin/" not in runtime:
            self.bad("Dockerfile: runtime stage does not copy build/bin from build")
        code_env = self.code_env_names()
        for k in re.findall(r"\b(CHOREO_[A-Z0-9_]+)=", runtime):
            if k not in code_env:
                self.bad("Dockerfile: ENV %s is not read by the code" % k)

    def check_dockerignore(self):
        try:
            with open(os.path.join(self.root, ".dockerignore"), encoding="utf-8") as f:
                lines = {l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")}
        except OSError:
            self.bad(".dockerignore missing")
            return
        for need in ("build", "var", ".git"):
            if need not in lines:
                self.bad(".dockerignore does not exclude %s" % need)


def main(argv):
    if len(argv) not in (2, 4):
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1]
    compose = argv[2] if len(argv) == 4 else os.path.join(root, "compose.yaml")
    dockerfile = argv[3] if len(argv) == 4 else os.path.join(root, "Dockerfile")
    c = Checker(root, compose, dockerfile)
    c.check_compose()
    c.check_dockerfile()
    c.check_dockerignore()
    for p in c.problems:
        print("containers: " + p)
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
