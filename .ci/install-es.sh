#!/usr/bin/env bash
# Make sure the Elasticsearch integration tests can run: Java 17+ and the Elasticsearch test
# distribution (Maven artifact org.elasticsearch.distribution.integ-test-zip:elasticsearch, no
# bundled JDK) in the cache the test fixture reads (tests/support/elasticsearch.py).  Idempotent:
# nothing is fetched when the zip is already cached.  Installs Debian packages only as root.
set -euo pipefail

ES_VERSION="${ICS_MONITOR_ES_VERSION:-8.19.21}"
CACHE="${ICS_MONITOR_ES_CACHE:-$HOME/.cache/ics-monitor/elasticsearch}"
ZIP="$CACHE/elasticsearch-$ES_VERSION.zip"
export DEBIAN_FRONTEND=noninteractive

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

packages=()
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  packages+=(openjdk-17-jre-headless)
fi
if [ ! -s "$ZIP" ] && ! command -v mvn >/dev/null 2>&1; then
  packages+=(maven)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-es: need ${packages[*]} (not root: install them yourself)" >&2
    exit 1
  fi
  echo "install-es: installing ${packages[*]}"
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
echo "install-es: java $(java_major)"

if [ ! -s "$ZIP" ]; then
  echo "install-es: fetching elasticsearch $ES_VERSION test distribution"
  mkdir -p "$CACHE"
  mvn -q -B dependency:copy \
    "-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
    "-DoutputDirectory=$CACHE"
fi
python3 - "$ZIP" <<'PY'
import sys, zipfile
path = sys.argv[1]
if not zipfile.is_zipfile(path):
    sys.exit(f"install-es: {path} is not a zip archive; delete it and run again")
with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
if not any(name.endswith("/bin/elasticsearch") for name in names):
    sys.exit(f"install-es: {path} holds no bin/elasticsearch")
print(f"install-es: {path} ok ({len(names)} entries)")
PY
