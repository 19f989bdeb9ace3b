#!/bin/sh
# SPDX-License-Identifier: MIT
# docs/asyncapi.yaml is current (regenerated from schemas/ into a temp file and
# diffed) and sound (tests/ops/asyncapi_check.py); a stale copy must be caught.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GEN="$ROOT/docs/gen-asyncapi"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }

if python3 "$GEN" >"$TMP/asyncapi.yaml" && diff -u "$ROOT/docs/asyncapi.yaml" "$TMP/asyncapi.yaml"; then
    ok
else
    ko "docs/asyncapi.yaml is not current: run make asyncapi"
fi

if python3 "$ROOT/tests/ops/asyncapi_check.py" "$ROOT" "$ROOT/docs/asyncapi.yaml"; then
    ok
else
    ko "docs/asyncapi.yaml is not a sound AsyncAPI 2.6 document"
fi

# A schema change must show up as a difference.
cp -r "$ROOT/schemas" "$TMP/schemas"
sed -i 's/"currency"$/"currency", "coupon"/' "$TMP/schemas/order.placed.json"
if python3 "$GEN" "$TMP/schemas" >"$TMP/changed.yaml" &&
    ! cmp -s "$TMP/changed.yaml" "$ROOT/docs/asyncapi.yaml" &&
    grep -q coupon "$TMP/changed.yaml"; then
    ok
else
    ko "a changed schema did not change the generated document"
fi

# A broken reference must be caught.
sed 's|#/components/schemas/order.placed"|#/components/schemas/order.nope"|' \
    "$ROOT/docs/asyncapi.yaml" >"$TMP/broken.yaml"
out=$(python3 "$ROOT/tests/ops/asyncapi_check.py" "$ROOT" "$TMP/broken.yaml")
if [ $? -ne 0 ] && printf '%s\n' "$out" | grep -q "order.nope does not resolve"; then
    ok
else
    ko "a dangling \$ref was not caught ($out)"
fi

# A document AsyncAPI 2.6 does not allow must be caught (when jsonschema is there).
sed 's|^    publish:$|    publishes:|' "$ROOT/docs/asyncapi.yaml" >"$TMP/invalid.yaml"
out=$(python3 "$ROOT/tests/ops/asyncapi_check.py" "$ROOT" "$TMP/invalid.yaml")
if [ $? -ne 0 ] && printf '%s\n' "$out" | grep -q "AsyncAPI 2.6 schema\|skipped"; then
    ok
else
    ko "a document against the AsyncAPI 2.6 schema was not caught ($out)"
fi

echo "asyncapi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
