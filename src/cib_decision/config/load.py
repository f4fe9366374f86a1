"""Load and validate a config directory into a Fleet, collecting every problem with its line."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..bounds import MAX_NAME_CHARS, excerpt
from ..errors import ConfigError, Problem
from ..memory import gc_paused
from ..suggest import closest
from ..yamlsrc import YamlDocument, YamlPart, YamlProblem, parse_yaml
from . import schemas
from .cache import MISS, ParsedCache
from .forms import IN_CURRENT_FORM
from .model import (
    DEFAULT_ENVIRONMENTS,
    EMAIL,
    ENVIRONMENTS_FILE,
    SHARED_FILES,
    Environment,
    Fleet,
    ImageKey,
    Pool,
    SharedInputs,
    Signing,
    SourceMirror,
    Target,
    image_tests_of,
    normalise_region,
    region_problem,
)
from .source import ConfigSource, SourceRefused
from .validate import SchemaCheck

if TYPE_CHECKING:
    import jsonschema

KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# worker-manager's workerPoolId pattern (services/worker-manager/schemas/constants.yml).
WORKER_POOL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$")

_CHECKS = {
    "key": SchemaCheck(schemas.KEY),
    ENVIRONMENTS_FILE: SchemaCheck(schemas.ENVIRONMENTS),
    **{name: SchemaCheck(schema) for name, schema in schemas.SHARED.items()},
}


def load_fleet(source: ConfigSource, cache: ParsedCache | None = None) -> Fleet:
    """Read every file of `source`; raise ConfigError listing all problems, or return the Fleet.

    With `cache`, files whose bytes were parsed and validated before are taken from it, and
    valid files new to it are added (see config/cache.py); problems are the same either way.
    """
    with gc_paused():
        try:
            return _load_fleet(source, cache)
        finally:
            if cache is not None:
                cache.flush()


# cloud-image-builder's first form (December 2019): every key in one `config.yaml`, by name.
FLEET_FILE = "config"
_KEY_FIELDS = frozenset(schemas.KEY["properties"])


def _fleet_file_parts(doc: YamlDocument) -> dict[str, YamlPart] | None:
    """The keys of a `config.yaml` in the single-file form; None for any other file."""
    data = doc.data
    if not isinstance(data, dict) or not data or _KEY_FIELDS & set(data) or not all(
            isinstance(name, str) and isinstance(value, dict) and "image" in value
            for name, value in data.items()):
        return None
    return {name: YamlPart(doc, (name,), value) for name, value in data.items()}


def _add_document(name: str, doc: YamlDocument | YamlPart, kind: str,
                  docs: dict[str, YamlDocument | YamlPart], problems: list[Problem],
                  checked: bool = False) -> bool:
    """Validate `doc` (unless `checked`), rewrite any earlier form into the current one
    (forms.py) and keep it as `docs[name]`; False when it has problems."""
    line = doc.line_of(()) if isinstance(doc, YamlPart) else 0  # 0: the file as a whole
    if kind == "key" and not KEY_NAME.match(name):
        problems.append(Problem(doc.filename, line, f"key name {_quoted(name)} "
                                "must be lower case letters, digits, '.', '_' or '-'"))
        return False
    if name in docs:
        problems.append(Problem(doc.filename, line, f"key {name} is defined "
                                f"twice (also in {docs[name].filename})"))
        return False
    if not checked:
        schema_problems = _schema_problems(doc, _CHECKS[kind])
        if schema_problems:
            problems.extend(schema_problems)
            return False
    if (in_current_form := IN_CURRENT_FORM.get(kind)) is not None:
        doc = replace(doc, data=in_current_form(doc.data))
    docs[name] = doc
    return True


def _quoted(value: object) -> str:
    """A value as a problem quotes it: short and escaped (`bounds.excerpt`)."""
    return f"'{excerpt(value if isinstance(value, str) else repr(value), 60)}'"


def _load_fleet(source: ConfigSource, cache: ParsedCache | None) -> Fleet:
    problems: list[Problem] = []
    docs: dict[str, YamlDocument | YamlPart] = {}
    for name in source.names():
        stem, dot, ext = name.rpartition(".")
        if not dot or ext not in ("yaml", "yml") or name.startswith("."):
            continue  # READMEs, scripts and editor files are not config
        display = source.display(name)
        if ext == "yml":
            problems.append(Problem(display, 0,
                                    f"config files end in .yaml; rename to {stem}.yaml"))
            continue
        kind = stem if stem in SHARED_FILES or stem == ENVIRONMENTS_FILE else "key"
        try:
            content = source.read(name)
        except SourceRefused as refused:
            problems.append(Problem(display, 0, str(refused)))
            continue
        except IsADirectoryError:
            problems.append(Problem(display, 0, "is a directory, not a config file"))
            continue
        data = MISS if cache is None else cache.lookup(kind, content)
        try:
            doc = (parse_yaml(content, display) if data is MISS
                   else YamlDocument(display, data, content.decode("utf-8-sig")))
        except YamlProblem as exc:
            problems.append(exc.problem)
            continue
        parts = _fleet_file_parts(doc) if stem == FLEET_FILE else None
        if parts is not None:
            for part_name, part in parts.items():
                _add_document(part_name, part, kind, docs, problems)
            continue
        checked = data is not MISS  # the cache holds valid files only
        if _add_document(stem, doc, kind, docs, problems, checked) and not checked \
                and cache is not None:
            cache.store(kind, content, doc.data)
    keys = {stem: _build_key(stem, doc, problems)
            for stem, doc in docs.items() if stem not in SHARED_FILES and stem != ENVIRONMENTS_FILE}
    problems.extend(_duplicate_pools(keys, docs))
    environments = _environments(docs.get(ENVIRONMENTS_FILE))
    for stem, doc in docs.items():
        _check_patterns(doc, _patterns(stem, doc.data), problems)
    platforms = _repository_list(source, PLATFORMS_FILE, schemas.PLATFORMS, problems)
    platforms_from = PLATFORMS_FILE
    if platforms is None and _has_predecessor_decision(source):
        platforms, platforms_from = PREDECESSOR_PLATFORMS, PREDECESSOR_PLATFORMS_FROM
    enabled = _repository_list(source, ENVIRONMENTS_LIST_FILE, tuple(environments), problems)
    for stem, key in keys.items():
        _check_regions(key, docs[stem], platforms, environments, problems)
    if problems:
        raise ConfigError(problems)
    shared = SharedInputs({name: docs[name].data for name in SHARED_FILES if name in docs})
    return Fleet(dict(sorted(keys.items())), shared, environments, platforms, enabled,
                 platforms_from)


# cloud-image-builder's repository-level switches, beside the config directory: the clouds it
# builds on and the environments it runs in, each a YAML list of names.
PLATFORMS_FILE, ENVIRONMENTS_LIST_FILE = ".platforms.yml", ".environments.yml"
# Before `.platforms.yml` (April 2021) the platforms were cloud-image-builder's code: every
# version of its decision script built machine images on Azure alone (docs/predecessor-forms.md).
PREDECESSOR_DECISION = "ci/create-image-build-tasks.py"
PREDECESSOR_PLATFORMS = frozenset({"azure"})
PREDECESSOR_PLATFORMS_FROM = f"{PREDECESSOR_DECISION} without {PLATFORMS_FILE}"


def _has_predecessor_decision(source: ConfigSource) -> bool:
    """Whether the repository's decision is still cloud-image-builder's own script."""
    try:
        return source.beside(PREDECESSOR_DECISION) is not None
    except SourceRefused:
        return False


def _repository_list(source: ConfigSource, name: str, allowed: tuple[str, ...],
                     problems: list[Problem]) -> frozenset[str] | None:
    """The names a repository-level list file holds (each one of `allowed`); None when the
    repository has no such file."""
    try:
        found = source.beside(name)
    except SourceRefused as refused:
        problems.append(Problem(name, 0, str(refused)))
        return None
    if found is None:
        return None
    display, content = found
    try:
        doc = parse_yaml(content, display)
    except YamlProblem as exc:
        problems.append(exc.problem)
        return None
    if not isinstance(doc.data, list) or not all(isinstance(v, str) for v in doc.data):
        problems.append(Problem(display, 1, f"{name} is a YAML list of names, such as "
                                            f"`- {allowed[0] if allowed else 'name'}`"))
        return None
    for index, value in enumerate(doc.data):
        if value not in allowed:
            hint = closest(value, allowed) if len(value) <= MAX_NAME_CHARS else None
            problems.append(Problem(display, doc.line_of((index,)), (
                f"unknown name {_quoted(value)}; "
                + (f"did you mean {hint!r}?" if hint else f"known: {', '.join(allowed)}"))))
    return frozenset(doc.data)


def _check_regions(key: ImageKey, doc: YamlDocument | YamlPart, platforms: frozenset[str] | None,
                   environments: dict[str, Environment], problems: list[Problem]) -> None:
    """Region names of the key's targets (and their copies) must be their cloud's, on the
    clouds something builds on (cloud-image-builder's disabled platforms kept targets with
    another cloud's region names)."""
    def enabled(platform: str) -> bool:
        return (platforms is None or platform in platforms) and any(
            e.platforms is None or platform in e.platforms for e in environments.values())

    for index, target in enumerate(key.targets):
        if not enabled(target.platform):
            continue
        regions = [((index, "region"), target.region, "")]
        regions += [((index, "copies", i), copy, " copies")
                    for i, copy in enumerate(target.copies)]
        for path, region, what in regions:
            if problem := region_problem(target.platform, region):
                problems.append(Problem(doc.filename, doc.line_of(("target", *path)),
                                        f"target {target.id}{what}: {problem}"))
        if target.platform == "google":
            problems += _google_target_problems(index, target, doc)


def _google_target_problems(index: int, target: Target, doc: YamlDocument | YamlPart
                            ) -> list[Problem]:
    """A Google target builds in a `project` and boots its builder in a `zone` of its region
    (images/google_machine.py): without them its build could only fail."""
    found = []
    for field, value in (("project", target.project), ("zone", target.zone)):
        if not value:
            found.append(Problem(doc.filename, doc.line_of(("target", index)),
                                 f"target {target.id}: a Google target needs `{field}`"))
    zone = target.zone
    if zone and not zone.startswith(f"{target.region}-"):
        found.append(Problem(doc.filename, doc.line_of(("target", index, "zone")),
                             f"target {target.id}: zone '{zone}' is not in region "
                             f"{target.region} (e.g. {target.region}-a)"))
    return found


def _patterns(stem: str, data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The regular expressions a file gives, by path: its validation rules' and smoke tests'
    `match` (a key file), or its environments' `image-tests` ones (environments.yaml)."""
    found: list[tuple[tuple[Any, ...], Any]] = []
    if stem == ENVIRONMENTS_FILE:
        for name, value in data.items():
            for family, tests in (value.get("image-tests") or {}).items():
                found += [((name, "image-tests", family, i, "match"), t.get("match"))
                          for i, t in enumerate(tests or ())]
    elif stem not in SHARED_FILES and isinstance(data, dict):
        validation = data.get("validation") or {}
        rules = (validation.get("instance") or {}).get("log") or ()
        tests = (validation.get("image") or {}).get("tests") or ()
        found += [(("validation", "instance", "log", i, "match"), r["match"])
                  for i, r in enumerate(rules)]
        found += [(("validation", "image", "tests", i, "match"), t.get("match"))
                  for i, t in enumerate(tests)]
    return [(path, value) for path, value in found if value is not None]


def _check_patterns(doc: YamlDocument | YamlPart, patterns: list[tuple[tuple[Any, ...], str]],
                    problems: list[Problem]) -> None:
    for path, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(Problem(doc.filename, doc.line_of(path),
                                    f"{_dotted(path)} {pattern!r} is not a regular expression: "
                                    f"{exc}"))


def _environments(doc: YamlDocument | None) -> dict[str, Environment]:
    if doc is None:
        return {e.name: e for e in DEFAULT_ENVIRONMENTS}
    return {name: Environment(name, value["root-url"], value.get("description", ""),
                              value.get("pull-requests", False), _signing(value.get("signing")),
                              _mirror(value.get("source-mirror")),
                              value.get("notify-pull-requests", False),
                              frozenset(value["platforms"]) if "platforms" in value else None,
                              tuple((family, image_tests_of(tests)) for family, tests
                                    in sorted((value.get("image-tests") or {}).items())),
                              (value.get("google") or {}).get("project"))
            for name, value in doc.data.items()}


def _mirror(value: dict[str, str] | None) -> SourceMirror | None:
    return None if value is None else SourceMirror(value["platform"], value["bucket"])


def _signing(value: dict[str, str] | None) -> Signing | None:
    return None if value is None else Signing(value["secret"], value["public-key"])


def _build_key(name: str, doc: YamlDocument | YamlPart, problems: list[Problem]) -> ImageKey:
    raw = doc.data
    here = doc.filename
    image = raw["image"]
    base = image.get("base") or {}
    if not (raw.get("iso") or image.get("source") or base):
        problems.append(Problem(here, doc.line_of(("image",)),
                                "no image source: give `iso`, `image.source` or `image.base`"))
    targets = _targets(raw["target"])
    if base and not (raw.get("iso") or image.get("source")):
        for index, target in enumerate(targets):
            if target.platform not in base:
                problems.append(Problem(here, doc.line_of(("target", index, "platform")),
                                        f"target {target.id} has no image source: `image.base` "
                                        f"has no {target.platform!r} and there is no iso or "
                                        "image.source to build a disk image from"))
    seen: dict[str, int] = {}  # signature -> index of its first target
    for index, target in enumerate(targets):
        signature = f"{target.platform}/{target.region}/{target.group or ''}"
        if signature in seen:
            problems.append(Problem(here, doc.line_of(("target", index)),
                                    f"duplicate target {target.id} (same platform, region and "
                                    f"group as line {doc.line_of(('target', seen[signature]))})"))
        seen.setdefault(signature, index)
    for index, address in enumerate((raw.get("notify") or {}).get("email") or ()):
        if not EMAIL.match(address):
            problems.append(Problem(here, doc.line_of(("notify", "email", index)),
                                    f"notify.email[{index}] {address!r} is not an email "
                                    "address (name@domain, no white space)"))
    pools = tuple(Pool(p["domain"], p["variant"], p)
                  for p in (raw.get("manager") or {}).get("pool") or ())
    for index, pool in enumerate(pools):
        path = ("manager", "pool", index)
        if not WORKER_POOL_ID.match(pool.id):
            problems.append(Problem(here, doc.line_of((*path, "variant")),
                                    f"pool id {pool.id!r} is not a valid worker pool id: the "
                                    "domain is 1-38 letters, digits, '-' or '_'; the variant "
                                    "is lower case, starts with a letter, has at most 38 "
                                    "characters and does not end with '-'"))
        on_platform = [t for t in targets if pool.platform is None or t.platform == pool.platform]
        places = {t.region for t in on_platform}
        # A copy serves a pool where workers need only the image (AWS, Google); an Azure
        # worker also needs the target's resource group and network in its own region.
        copies: dict[str, set[str]] = {}
        for t in on_platform:
            copies.setdefault(t.platform, set()).update(t.copies)
        places |= {c for platform, regions in copies.items() if platform != "azure"
                   for c in regions}
        for loc_index, location in enumerate(pool.locations):
            if location not in places:
                where = f"{pool.platform} " if pool.platform else ""
                hint = closest(location, sorted(places))
                problems.append(Problem(
                    here, doc.line_of((*path, "locations", loc_index)),
                    f"pool {pool.id} location {location!r} has no {where}target in this file"
                    + ("; an Azure location needs a target there (its resource group and "
                       "network): `copies` only replicates the image"
                       if location in copies.get("azure", ()) else
                       f"; did you mean {hint!r}?" if hint else "")))
    return ImageKey(name, here, raw, targets, pools)


def _targets(raw_targets: list[dict[str, Any]]) -> tuple[Target, ...]:
    """Targets are named `<platform>/<region>`, with `/<group>` added only where a key has
    several targets on the same platform and region (cloud-image-builder allowed that)."""
    bases = [f"{t['platform']}/{normalise_region(t['region'])}" for t in raw_targets]
    result = []
    for base, raw in zip(bases, raw_targets, strict=True):
        ambiguous = bases.count(base) > 1 and raw.get("group")
        target_id = f"{base}/{raw['group']}" if ambiguous else base
        result.append(Target(target_id, raw["platform"], normalise_region(raw["region"]), raw))
    return tuple(result)


def _duplicate_pools(keys: dict[str, ImageKey],
                     docs: dict[str, YamlDocument | YamlPart]) -> list[Problem]:
    first: dict[str, tuple[ImageKey, int]] = {}  # pool id -> key and index that define it first
    problems = []
    for key in sorted(keys.values(), key=lambda k: k.name):
        for index, pool in enumerate(key.pools):
            if pool.id not in first:
                first[pool.id] = (key, index)
                continue
            other, other_index = first[pool.id]
            where = f"{other.file}:{docs[other.name].line_of(('manager', 'pool', other_index))}"
            problems.append(Problem(key.file, docs[key.name].line_of(("manager", "pool", index)),
                                    f"duplicate pool id {pool.id} (also defined at {where})"))
    return problems


def _schema_problems(doc: YamlDocument | YamlPart, check: SchemaCheck) -> list[Problem]:
    problems = []
    seen = set()
    for error in check.errors(doc.data):
        # Content shared through a YAML alias is one object that fails once per use; report it
        # once. (Scalars are compared by line: equal numbers may be one object.)
        instance = error.instance
        identity = (id(instance) if isinstance(instance, dict | list)
                    else doc.line_of(tuple(error.absolute_path)))
        where = (identity, tuple(error.schema_path))
        if where not in seen:
            seen.add(where)
            problems.extend(_describe(doc, error))
    return problems


def _describe(doc: YamlDocument | YamlPart, error: jsonschema.ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    where = _dotted(path) or "the file"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        result = []
        for name in extra:
            hint = closest(name, known) if len(name) <= MAX_NAME_CHARS else None
            message = f"unknown field {_quoted(name)} in {where}"
            message += (f"; did you mean {hint!r}?" if hint
                        else f"; known fields: {', '.join(known)}")
            result.append(Problem(doc.filename, doc.line_of((*path, name)), message))
        return result
    if error.validator == "required":
        return [Problem(doc.filename, doc.line_of(path),
                        f"missing required field in {where}: {error.message.split(' is ')[0]}")]
    if error.validator == "type":
        expected = schema.get("type")
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [Problem(doc.filename, doc.line_of(path),
                        f"wrong type for {where}: expected {expected}, got "
                        f"{_type_name(error.instance)} ({_quoted(error.instance)})")]
    if error.validator == "enum":
        hint = closest(str(error.instance), [str(v) for v in schema["enum"]]) \
            if len(str(error.instance)) <= MAX_NAME_CHARS else None
        allowed = ", ".join(str(v) for v in schema["enum"])
        return [Problem(doc.filename, doc.line_of(path),
                        f"invalid value {_quoted(error.instance)} for {where}: expected one of "
                        f"{allowed}"
                        + (f"; did you mean {hint!r}?" if hint else ""))]
    if error.validator == "anyOf" and schema.get("properties", {}).get("url"):
        return [Problem(doc.filename, doc.line_of(path),
                        f"{where} needs `url`, or `platform` with `bucket` and `key`")]
    if (error.validator in ("anyOf", "oneOf") and isinstance(error.instance, dict)
            and all(set(alt) == {"required"} for alt in error.validator_value)):
        # Alternative sets of fields (a current form and a predecessor form): name them.
        sets = [alt["required"] for alt in error.validator_value]
        given = [names for names in sets if all(n in error.instance for n in names)]
        fields = [" and ".join(f"`{n}`" for n in names) for names in (given or sets)]
        return [Problem(doc.filename, doc.line_of(path),
                        f"{where} has {' and also '.join(fields)}: give only one of them"
                        if given else f"{where} needs {', or '.join(fields)}")]
    if error.validator == "oneOf" and error.context:
        # Report the alternative that got furthest (the deepest error), not "is not valid under".
        # (An alternative of another type is the least likely to be what was meant.)
        best = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        return _describe(doc, best)
    return [Problem(doc.filename, doc.line_of(path), f"invalid {where}: {error.message}")]


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
