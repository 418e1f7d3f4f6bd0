#!/usr/bin/env python3
"""Generates crates/kox-proto/src/generated.rs: the field tables the protobuf decoder runs on.

The tables are derived from two upstream sources of the same Kubernetes release:

- the protobuf schema (`generated.proto` of k8s.io/api and k8s.io/apimachinery): message names,
  field numbers, scalar/message types, `repeated` and `map<,>`;
- the Go struct tags of the API types (`types.go` …: `json:"name,omitempty" protobuf:"bytes,1,opt,…"`):
  each field's JSON name, `omitempty`, `inline`, and whether the Go field is a pointer. These decide
  how a decoded field is written as JSON (the protobuf schema alone cannot tell that
  `Volume.volumeSource` is inlined, or that a non-pointer `generation = 0` means "unset").

Usage (with checkouts of kubernetes/api and kubernetes/apimachinery at the same release tag):

    python3 crates/kox-proto/gen/gen_schema.py --api ../api --apimachinery ../apimachinery \
        --release v1.32.9 > crates/kox-proto/src/generated.rs

Only messages reachable from the top-level kinds of the group-versions in PACKAGES are emitted.
"""

import argparse
import os
import re
import sys

# Go package (relative to its repository) → apiVersion of its kinds.
PACKAGES = [
    ("api", "core/v1", "v1"),
    ("api", "apps/v1", "apps/v1"),
    ("api", "authentication/v1", "authentication.k8s.io/v1"),
    ("api", "authorization/v1", "authorization.k8s.io/v1"),
    ("api", "autoscaling/v1", "autoscaling/v1"),
    ("api", "autoscaling/v2", "autoscaling/v2"),
    ("api", "batch/v1", "batch/v1"),
    ("api", "coordination/v1", "coordination.k8s.io/v1"),
    ("api", "discovery/v1", "discovery.k8s.io/v1"),
    ("api", "events/v1", "events.k8s.io/v1"),
    ("api", "networking/v1", "networking.k8s.io/v1"),
    ("api", "policy/v1", "policy/v1"),
    ("api", "rbac/v1", "rbac.authorization.k8s.io/v1"),
    ("api", "scheduling/v1", "scheduling.k8s.io/v1"),
    ("api", "storage/v1", "storage.k8s.io/v1"),
]
# Kinds of k8s.io/apimachinery/pkg/apis/meta/v1 that clients send in any group-version.
META_KINDS = ["DeleteOptions"]

# Messages whose JSON form is not an object of their fields.
SPECIALS = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
}

# Messages with a special JSON form the decoder does not implement (none is reachable today).
UNSUPPORTED = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "a Go time.Duration string such as 1m30s",
}

SCALARS = {
    "bool": "Bool", "int32": "Int32", "int64": "Int64", "uint32": "Uint32", "uint64": "Uint64",
    "sint32": "Sint32", "sint64": "Sint64", "fixed32": "Fixed32", "fixed64": "Fixed64",
    "sfixed32": "Sfixed32", "sfixed64": "Sfixed64", "float": "Float", "double": "Double",
    "string": "String", "bytes": "Bytes",
}


def die(msg):
    print(f"gen_schema: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# generated.proto

FIELD_RE = re.compile(r"^(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?;$")
MAP_RE = re.compile(r"^map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;$")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def parse_proto(path, messages):
    text = strip_comments(open(path, encoding="utf-8").read())
    m = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M)
    if not m:
        die(f"{path}: no package")
    package = m.group(1)
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        mm = re.match(r"^message\s+(\w+)\s*\{$", line)
        if mm:
            if current is not None:
                die(f"{path}: nested message {mm.group(1)}")
            current = {"name": f"{package}.{mm.group(1)}", "package": package,
                       "short": mm.group(1), "fields": []}
            continue
        if line == "}":
            if current is not None:
                messages[current["name"]] = current
                current = None
            continue
        if current is None:
            if re.match(r"^(syntax|package|import|option)\b", line):
                continue
            die(f"{path}: unexpected top-level line {line!r}")
        fm = FIELD_RE.match(line)
        if fm:
            label, ty, name, num, _opts = fm.groups()
            current["fields"].append({"label": label, "type": ty, "name": name,
                                      "number": int(num), "map_key": None})
            continue
        mp = MAP_RE.match(line)
        if mp:
            key, val, name, num = mp.groups()
            current["fields"].append({"label": "map", "type": val, "name": name,
                                      "number": int(num), "map_key": key})
            continue
        die(f"{path}: cannot parse {line!r} in {current['name']}")


def resolve(ty, package, messages):
    if ty in SCALARS:
        return None
    if ty.startswith("."):
        full = ty[1:]
    else:
        full = f"{package}.{ty}"
    if full not in messages:
        die(f"unknown message type {ty} in package {package}")
    return full


# ---------------------------------------------------------------------------------------------
# Go struct tags

GO_TYPE_RE = re.compile(r"^type\s+(\w+)\s+struct\s*\{\s*$")
GO_SLICE_RE = re.compile(r"^type\s+(\w+)\s+\[\](\S+)\s*$")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_package(directory):
    """Returns ({struct: {proto number: field info}}, {struct: [field infos]}, kinds, slice types)."""
    structs, kinds, slices = {}, [], set()
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".go") or fname.endswith("_test.go"):
            continue
        if fname.startswith("zz_generated") or fname.endswith(".pb.go") or "swagger" in fname:
            continue
        current, order, has_typemeta = None, 0, False
        for raw in open(os.path.join(directory, fname), encoding="utf-8"):
            line = raw.strip()
            sm = GO_SLICE_RE.match(line)
            if sm:
                slices.add(sm.group(1))
            gm = GO_TYPE_RE.match(line)
            if gm:
                current, order, has_typemeta = gm.group(1), 0, False
                structs.setdefault(current, {})
                continue
            if current is None:
                continue
            if line == "}":
                if has_typemeta and not current.endswith("List"):
                    kinds.append(current)
                current = None
                continue
            if line.startswith("//") or "`" not in line:
                continue
            decl, tag = line.split("`", 1)
            tags = dict(TAG_RE.findall(tag))
            words = decl.split()
            if len(words) == 1:
                gotype, goname = words[0], words[0].lstrip("*").split(".")[-1]
            elif len(words) == 2:
                goname, gotype = words
            else:
                die(f"{directory}/{fname}: cannot parse Go field {line!r}")
            json_tag = tags.get("json")
            if json_tag is not None and goname == "TypeMeta" and "inline" in json_tag:
                has_typemeta = True
            pb = tags.get("protobuf")
            if pb is None or pb == "-":
                continue
            parts = pb.split(",")
            number = int(parts[1])
            jname, omitempty, inline = goname, False, False
            if json_tag is not None:
                jparts = json_tag.split(",")
                if jparts[0]:
                    jname = jparts[0]
                omitempty = "omitempty" in jparts[1:]
                inline = "inline" in jparts[1:]
            structs[current][number] = {
                "json": jname, "omitempty": omitempty, "inline": inline,
                "pointer": gotype.startswith("*"), "order": order, "skip": jname == "-",
            }
            order += 1
    return structs, kinds, slices


# ---------------------------------------------------------------------------------------------


def proto_package_dir(package, roots):
    if package.startswith("k8s.io.api."):
        return os.path.join(roots["api"], *package[len("k8s.io.api."):].split("."))
    if package.startswith("k8s.io.apimachinery."):
        return os.path.join(roots["apimachinery"], *package[len("k8s.io.apimachinery."):].split("."))
    die(f"no Go package for proto package {package}")


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--apimachinery", required=True)
    ap.add_argument("--release", required=True, help="the upstream release the checkouts are at")
    args = ap.parse_args()
    roots = {"api": args.api, "apimachinery": args.apimachinery}

    messages = {}
    for root in roots.values():
        for dirpath, _dirs, files in os.walk(root):
            if "generated.proto" in files and "testapigroup" not in dirpath:
                parse_proto(os.path.join(dirpath, "generated.proto"), messages)

    go_cache = {}

    def go_package(package):
        if package not in go_cache:
            go_cache[package] = parse_go_package(proto_package_dir(package, roots))
        return go_cache[package]

    # Top-level kinds.
    kinds = []
    for repo, rel, api_version in PACKAGES:
        package = "k8s.io." + repo + "." + rel.replace("/", ".")
        _structs, go_kinds, _slices = go_package(package)
        for kind in go_kinds:
            full = f"{package}.{kind}"
            if full in messages:
                kinds.append((api_version, kind, full))
    for kind in META_KINDS:
        kinds.append(("*", kind, f"k8s.io.apimachinery.pkg.apis.meta.v1.{kind}"))

    # Reachable messages, in a stable order.
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        order.append(name)
        msg = messages[name]
        if name in SPECIALS:
            return
        for f in msg["fields"]:
            target = resolve(f["type"], msg["package"], messages)
            if target:
                visit(target)

    for _v, _k, full in kinds:
        visit(full)
    for name in order:
        if name in UNSUPPORTED:
            die(f"{name} is reachable but the decoder has no JSON form for it: {UNSUPPORTED[name]}")
    index = {name: i for i, name in enumerate(order)}

    out = []
    w = out.append
    w("// @generated by crates/kox-proto/gen/gen_schema.py — do not edit.")
    w(f"// Source: k8s.io/api and k8s.io/apimachinery {args.release} (generated.proto and the Go")
    w("// struct tags of the API types). Regenerate with the command in that script's docstring.")
    w("")
    w("use crate::schema::{Card, Field, Go, Kind, Message, Scalar, Special, Ty};")
    w("")
    w("#[rustfmt::skip]")
    w("pub(crate) static MESSAGES: &[Message] = &[")
    for name in order:
        msg = messages[name]
        special = SPECIALS.get(name)
        go_structs, _kinds, go_slices = go_package(msg["package"])
        if special is None and msg["short"] in go_slices and len(msg["fields"]) == 1 \
                and msg["fields"][0]["name"] == "items" and msg["fields"][0]["label"] == "repeated":
            special = "List"
        go_fields = go_structs.get(msg["short"])
        if special is None and go_fields is None:
            die(f"no Go struct for {name}")
        fields = []
        for f in msg["fields"]:
            target = resolve(f["type"], msg["package"], messages)
            ty = f"Ty::Message({index[target]})" if target else f"Ty::Scalar(Scalar::{SCALARS[f['type']]})"
            if f["label"] == "map":
                if f["map_key"] not in SCALARS:
                    die(f"{name}.{f['name']}: map key {f['map_key']}")
                card = f"Card::Map(Scalar::{SCALARS[f['map_key']]})"
            elif f["label"] == "repeated":
                card = "Card::Repeated"
            else:
                card = "Card::Single"
            json, go, rank = f["name"], "Go::Pointer", 1 << 20 | f["number"]
            if special is None:
                info = go_fields.get(f["number"])
                if info is None:
                    die(f"{name}.{f['name']} = {f['number']}: no Go field with that protobuf tag")
                json, rank = info["json"], info["order"]
                if info["skip"]:
                    go = "Go::Skip"
                elif info["inline"]:
                    if not target:
                        die(f"{name}.{f['name']}: inline scalar")
                    go = "Go::Inline"
                elif info["pointer"]:
                    go = "Go::Pointer"
                else:
                    go = f"Go::Value {{ omitempty: {'true' if info['omitempty'] else 'false'} }}"
            fields.append((rank, f"Field {{ number: {f['number']}, json: {rust_str(json)}, ty: {ty}, card: {card}, go: {go} }}"))
        fields.sort(key=lambda x: x[0])
        w(f"    // {index[name]}")
        w(f"    Message {{")
        w(f"        name: {rust_str(name)},")
        w(f"        special: Special::{special or 'None'},")
        if fields:
            w(f"        fields: &[")
            for _rank, text in fields:
                w(f"            {text},")
            w(f"        ],")
        else:
            w(f"        fields: &[],")
        w(f"    }},")
    w("];")
    w("")
    w("/// Top-level kinds: (apiVersion, kind, message); apiVersion `*` matches any group-version.")
    w("#[rustfmt::skip]")
    w("pub(crate) static KINDS: &[Kind] = &[")
    for api_version, kind, full in kinds:
        w(f"    Kind {{ api_version: {rust_str(api_version)}, kind: {rust_str(kind)}, message: {index[full]} }},")
    w("];")
    print("\n".join(out))
    print(f"gen_schema: {len(order)} messages, {len(kinds)} kinds", file=sys.stderr)


if __name__ == "__main__":
    main()
