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
EXPLAIN_OPTION_KEYS = ("target", "samples", "ratio", "seed", "design", "offset", "include_audio")
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


def _refuse_unknown(names, where: str) -> None:
    """An option name we do not know is refused (a typo must not silently fall back to a default)."""
    unknown = sorted(str(n) for n in names if n not in OPTION_KEYS)
    if unknown:
        raise OptionError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                          f"{where}: the options are {', '.join(OPTION_KEYS)}", code="unknown_option")


def _known_options(fields: dict, where: str, allowed: tuple = ()) -> dict:
    """The options of ``fields`` (a JSON object); any key that is neither an option nor ``allowed`` is refused."""
    if not isinstance(fields, dict):
        raise TwolevelError(f"{where} must be a JSON object", code="bad_request")
    _refuse_unknown([k for k in fields if k not in allowed], where)
    return dict(fields)


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
    options = _known_options({k: v for k, v in inst.items() if k != audio_key}, "the KServe v1 instance")
    options.update(_known_options(body.get("parameters") or {}, "the KServe v1 parameters"))
    return decode_base64(raw, audio_key), options


def _parse_kserve_v2(body: dict) -> tuple[bytes, dict]:
    inputs = body["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise TwolevelError("KServe v2: 'inputs' must be a non-empty list", code="bad_request")
    options = _known_options(body.get("parameters") or {}, "the KServe v2 parameters")
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
        else:
            raise TwolevelError(f"KServe v2: input {name!r} is a second audio input or an unknown option "
                                f"(one audio file per request; the options are {', '.join(OPTION_KEYS)})",
                                code="unknown_option")
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
    options = _known_options({k: v for k, v in body.items() if k != audio_key}, "the JSON body")
    return decode_base64(body[audio_key], audio_key), options, None


def _header_options(lower_headers: dict) -> dict:
    _refuse_unknown([h[len(HEADER_PREFIX):].replace("-", "_") for h in lower_headers if h.startswith(HEADER_PREFIX)],
                    "the X-Twolevel-* headers")
    options = {}
    for key in OPTION_KEYS:
        header = HEADER_PREFIX + key.replace("_", "-")
        if header in lower_headers:
            options[key] = lower_headers[header]
    return options


def _audio_field(row: dict) -> str:
    """The one request field with the audio; a second file field or an unknown text field is refused."""
    candidates = [k for k in row if k not in OPTION_KEYS]
    files = [k for k in candidates if k in AUDIO_KEYS or isinstance(row[k], (bytes, bytearray, dict))]
    if not files:
        raise TwolevelError("no audio in the request: send the file as the body or a multipart file field",
                            code="missing_audio")
    if len(files) > 1:
        raise TwolevelError(f"{len(files)} audio files in one request (fields {', '.join(map(repr, files))}): "
                            f"send one file per request", code="multiple_audio")
    _refuse_unknown([k for k in candidates if k not in files], "the form or query fields")
    return files[0]


def _content_type(headers: dict, key: str) -> str:
    meta = headers.get(key)
    if isinstance(meta, dict):
        return str(meta.get("content-type") or "").lower()
    return ""


def _json_problem(err: ValueError) -> str:
    """What is wrong with a JSON body, in one phrase."""
    if isinstance(err, json.JSONDecodeError):
        # Some messages end in "at" already ("Unterminated string starting at").
        return f"{err.msg}{'' if err.msg.endswith(' at') else ' at'} position {err.pos}"
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8"
    # Python refuses integers of more than 4,300 digits (int_max_str_digits) with a ValueError.
    return "a number has more than 4,300 digits" if "digits" in str(err) else str(err)


def _decode_body(value, content_type: str):
    """A body as the server passed it -> a JSON value (dict, list) or the raw bytes."""
    if isinstance(value, str):  # text/* bodies arrive decoded
        if value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except ValueError as err:
                raise TwolevelError(f"malformed JSON body ({_json_problem(err)})", code="malformed_json") from None
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)) and "json" in content_type:
        # TorchServe forwards JSON it could not decode as bytes.
        try:
            return json.loads(bytes(value).decode("utf-8"))
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise TwolevelError(f"malformed JSON body ({_json_problem(err)})", code="malformed_json") from None
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
    audio_key = _audio_field(row)
    options.update({k: v for k, v in row.items() if k in OPTION_KEYS})  # then form fields / query parameters
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


def multipart_fields(body: bytes, content_type: str) -> dict:
    """A ``multipart/form-data`` body -> ``{field name: bytes}`` (what TorchServe hands a handler
    as one request's row), for servers that receive the raw body."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    if not message.is_multipart():
        raise TwolevelError("malformed multipart body (no parts found)", code="bad_request")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True) or b""
    return fields
