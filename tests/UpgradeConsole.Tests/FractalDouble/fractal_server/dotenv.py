"""python-dotenv's reading rules (the parser fractal-server uses), for the double's settings."""
import codecs
import re

_multiline_whitespace = re.compile(r"\s*", re.MULTILINE)
_whitespace = re.compile(r"[^\S\r\n]*")
_export = re.compile(r"(?:export[^\S\r\n]+)?")
_single_quoted_key = re.compile(r"'([^']+)'")
_unquoted_key = re.compile(r"([^=\#\s]+)")
_equal_sign = re.compile(r"(=[^\S\r\n]*)")
_single_quoted_value = re.compile(r"'((?:\\'|[^'])*)'")
_double_quoted_value = re.compile(r'"((?:\\"|[^"])*)"')
_unquoted_value = re.compile(r"([^\r\n]*)")
_comment = re.compile(r"(?:[^\S\r\n]*#[^\r\n]*)?")
_end_of_line = re.compile(r"[^\S\r\n]*(?:\r\n|\n|\r|$)")
_rest_of_line = re.compile(r"[^\r\n]*(?:\r|\n|\r\n)?")
_double_quote_escapes = re.compile(r"\\[\\'\"abfnrtv]")
_single_quote_escapes = re.compile(r"\\[\\']")
_variable = re.compile(r"\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}")


class _Error(Exception):
    pass


def _decode(regex, value):
    return regex.sub(lambda m: codecs.decode(m.group(0), "unicode-escape"), value)


def parse(text):
    """Yields (key, value) pairs; value is None for a bare key."""
    pos = 0
    while pos < len(text):
        start = pos
        try:
            def read(regex):
                nonlocal pos
                m = regex.match(text, pos)
                if m is None:
                    raise _Error()
                pos = m.end()
                return m.groups()

            read(_multiline_whitespace)
            if pos >= len(text):
                return
            read(_export)
            if text[pos:pos + 1] == "#":
                key = None
            elif text[pos:pos + 1] == "'":
                (key,) = read(_single_quoted_key)
            else:
                (key,) = read(_unquoted_key)
            read(_whitespace)
            value = None
            if text[pos:pos + 1] == "=":
                read(_equal_sign)
                c = text[pos:pos + 1]
                if c == "'":
                    value = _decode(_single_quote_escapes, read(_single_quoted_value)[0])
                elif c == '"':
                    value = _decode(_double_quote_escapes, read(_double_quoted_value)[0])
                elif c in ("", "\n", "\r"):
                    value = ""
                else:
                    value = re.sub(r"\s+#.*", "", read(_unquoted_value)[0]).rstrip()
            read(_comment)
            read(_end_of_line)
            if key is not None:
                yield key, value
        except _Error:
            pos = start
            m = _rest_of_line.match(text, pos)
            pos = m.end() if m.end() > pos else pos + 1


def values(path, environ=None):
    """dotenv_values(path): later keys win, ${VAR} resolved against the environment then earlier keys."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    result = {}
    for key, value in parse(text):
        if value is not None:
            env = dict(environ or {})
            env.update(result)
            value = _variable.sub(lambda m: env.get(m.group("name")) or (m.group("default") or ""), value)
        result[key] = value
    return result
