"""One HTTP request to a twolevel model server -> audio bytes, option text, protocol, kind.

Shared by every model server (the TorchServe handler today, a KServe-native server later), so all
of them accept the same bodies and answer the same mistakes with the same codes. Standard library
only; no server imports.

Accepted bodies:

* the audio file as the raw body, or as a multipart file field (any name; ``data``, ``file``,
  ``audio`` or ``body`` preferred);
* JSON ``{"data": B64, "target": ...}`` (or ``"audio"`` for ``"data"``);
* KServe v1 ``{"instances": [{"data": B64, ...}], "parameters": {...}}`` (``{"b64": ...}`` too);
* KServe v2 ``{"inputs": [{"name": "audio", "data": [B64]}, {"name": "target", "data": [...]}],
  "parameters": {...}}``.

Options (:data:`OPTION_KEYS`) come from JSON fields, multipart or query fields, and
``X-Twolevel-<option>`` headers (``include_audio`` as ``X-Twolevel-Include-Audio``), in that
order of precedence (JSON first). Their values stay text here: turning them into explanation
options (ranges, defaults, server caps) is the caller's job.
"""
from __future__ import annotations

import base64
import binascii
import json

from ..errors import OptionError, TwolevelError
from ..options import FALSE_WORDS, TRUE_WORDS

#: Request fields that carry the audio file, in order of preference.
AUDIO_KEYS = ("data", "audio", "file", "body")
#: Request fields that carry explanation options (turned into ExplainOptions by the handler).
EXPLAIN_OPTION_KEYS = ("target", "samples", "ratio", "seed", "offset", "include_audio")
#: Request fields that carry options: the explanation's, which route, and the file's name.
OPTION_KEYS = EXPLAIN_OPTION_KEYS + ("explain", "name")
#: Headers ``X-Twolevel-<option>`` (lower case, ``_`` written ``-``) carry options too.
HEADER_PREFIX = "x-twolevel-"


def option_text(value) -> str:
    """An option value as stripped text (bytes from multipart fields are UTF-8)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise OptionError("option values must be UTF-8 text", code="bad_option") from None
    return str(value).strip()


def option_bool(value, name: str) -> bool:
    """A yes/no option: a JSON bool or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS`."""
    if isinstance(value, bool):
        return value
    text = option_text(value).lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise OptionError(f"{name} must be true or false, not {text!r}", code="bad_option")


def decode_base64(value, what: str = "data") -> bytes:
    """The audio file from a base64 JSON value (or KServe v1's ``{"b64": ...}``); ``what`` names the field."""
    if isinstance(value, dict) and "b64" in value:  # KServe v1 convention {"b64": ...}
        value = value["b64"]
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if not isinstance(value, str):
        raise TwolevelError(f"JSON field {what!r} must be the audio file as a base64 string", code="bad_base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TwolevelError(f"JSON field {what!r} is not valid base64", code="bad_base64") from None


def _known_options(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if k in OPTION_KEYS}


def _parse_kserve_v1(body: dict) -> tuple[bytes, dict]:
    instances = body["instances"]
    if not isinstance(instances, list) or len(instances) != 1:
        raise TwolevelError("KServe v1: send exactly one entry in 'instances'", code="bad_request")
    inst = instances[0]
    if not isinstance(inst, dict):
        return decode_base64(inst, "instances[0]"), {}
    audio_key = next((k for k in ("data", "audio", "b64") if k in inst), None)
    if audio_key is None:
        raise TwolevelError("KServe v1 instance has no 'data' field with the audio", code="missing_audio")
    raw = inst[audio_key] if audio_key != "b64" else {"b64": inst["b64"]}
    options = _known_options(inst)
    options.update(_known_options(body.get("parameters") or {}))
    return decode_base64(raw, audio_key), options


def _parse_kserve_v2(body: dict) -> tuple[bytes, dict]:
    inputs = body["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise TwolevelError("KServe v2: 'inputs' must be a non-empty list", code="bad_request")
    options = _known_options(body.get("parameters") or {})
    audio = None
    for item in inputs:
        if not isinstance(item, dict):
            raise TwolevelError("KServe v2: each input must be an object", code="bad_request")
        name, data = item.get("name"), item.get("data")
        value = data[0] if isinstance(data, list) and len(data) == 1 else data
        if name in OPTION_KEYS:
            options[name] = value
        elif audio is None:
            audio = decode_base64(value, f"inputs[{name}]")
    if audio is None:
        raise TwolevelError("KServe v2: no input carries the audio", code="missing_audio")
    return audio, options


def parse_json_body(body: dict) -> tuple[bytes, dict, str | None]:
    """Audio bytes, options and protocol (None, ``"v1"``, ``"v2"``) from a decoded JSON body."""
    if "instances" in body:
        return (*_parse_kserve_v1(body), "v1")
    if "inputs" in body:  # KServe v2 (open inference protocol)
        return (*_parse_kserve_v2(body), "v2")
    audio_key = next((k for k in ("data", "audio") if k in body), None)
    if audio_key is None:
        raise TwolevelError("JSON body has no 'data' field with the audio file (base64)", code="missing_audio")
    return decode_base64(body[audio_key], audio_key), _known_options(body), None


def _header_options(lower_headers: dict) -> dict:
    options = {}
    for key in OPTION_KEYS:
        header = HEADER_PREFIX + key.replace("_", "-")
        if header in lower_headers:
            options[key] = lower_headers[header]
    return options


def _audio_field(row: dict) -> str:
    audio_key = next((k for k in AUDIO_KEYS if k in row), None)
    if audio_key is None:  # a multipart file field with some other name
        audio_key = next((k for k, v in row.items()
                          if k not in OPTION_KEYS and isinstance(v, (bytes, bytearray, dict))), None)
    if audio_key is None:
        raise TwolevelError("no audio in the request: send the file as the body or a multipart file field",
                            code="missing_audio")
    return audio_key


def _content_type(headers: dict, key: str) -> str:
    meta = headers.get(key)
    if isinstance(meta, dict):
        return str(meta.get("content-type") or "").lower()
    return ""


def _decode_body(value, content_type: str):
    """A body as the server passed it -> a JSON value (dict, list) or the raw bytes."""
    if isinstance(value, str):  # text/* bodies arrive decoded
        if value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as err:
                raise TwolevelError(f"malformed JSON body ({err.msg} at position {err.pos})",
                                    code="malformed_json") from None
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)) and "json" in content_type:
        # TorchServe forwards JSON it could not decode as bytes.
        try:
            return json.loads(bytes(value).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            detail = f"{err.msg} at position {err.pos}" if isinstance(err, json.JSONDecodeError) else "not UTF-8"
            raise TwolevelError(f"malformed JSON body ({detail})", code="malformed_json") from None
    return value


def parse_request(row: dict, headers: dict) -> dict:
    """One request -> ``{"audio_bytes", "options", "protocol", "explain"}``.

    ``row`` maps request parameter names to values (the raw body is ``body``; multipart fields
    and forwarded query parameters are named as sent). ``headers`` is the request's header dict
    (TorchServe: ``context.get_all_request_header``; a body field's entry may be a dict with its
    ``content-type``). ``explain`` is true for an ``explain: True`` header (TorchServe's mark for
    the explanation routes) or a true ``explain`` option. Raises :class:`TwolevelError` for a bad
    request.
    """
    if not isinstance(row, dict):
        row = {"body": row}
    lower = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    options = _header_options(lower)  # lowest precedence: X-Twolevel-* headers
    options.update(_known_options(row))  # then form fields / query parameters
    audio_key = _audio_field(row)
    value = _decode_body(row[audio_key], _content_type(headers, audio_key))
    protocol = None
    if isinstance(value, dict):
        audio, json_options, protocol = parse_json_body(value)
        options.update(json_options)
    elif isinstance(value, list):
        raise TwolevelError("a JSON body must be an object with a 'data' field", code="bad_request")
    else:
        audio = bytes(value)
    explain = lower.get("explain") == "True"
    if "explain" in options:
        explain = explain or option_bool(options.pop("explain"), "explain")
    return {"audio_bytes": audio, "options": options, "protocol": protocol, "explain": explain}
