#!/usr/bin/env python3
"""Regenerates tests/UpgradeConsole.Tests/EnvFiles/dotenv-golden.json with python-dotenv as the oracle.

The C# parser (src/UpgradeConsole.Core/EnvFiles/DotEnvFile.cs) must read every case the way
python-dotenv does. Run with an empty environment so ${VAR} only sees the file:
    env -i python3 scripts/dotenv-golden.py
Needs python-dotenv (1.1.x or 1.2.x: their parsers are the same) on the machine that regenerates it.
"""
import io, json, os, sys
import dotenv
from dotenv.main import DotEnv
from dotenv.parser import parse_stream

CASES = [
    "A=1\nB=two words\n",
    "export A=1\nexport  B = spaced \n",
    "# comment\n\nA=1 # inline comment\nB=1#not a comment\nC='#quoted' # c\n",
    "A='single \\' quote \\\\ back \\n not newline'\n",
    'A="double \\" \\\\ \\n \\t \\a \\b \\f \\r \\v"\n',
    'A="multi\nline\nvalue"\nB=after\n',
    "A='multi\nline'\n",
    "BARE\nA=\nB= \nC=''\n",
    "A=1\nA=2\n",
    "A=hello\nB=${A} world\nC=${MISSING:-fallback}\nD=${MISSING}\nE=$A\nF='${A}'\n",
    "A=1\r\nB=2\r\n# crlf\r\nC=\"x\r\ny\"\r\n",
    "A=1\rB=2\r",
    "A=no final newline",
    "=novalue\nA=1\n'quoted key'=v\n",
    "A=\"unterminated\nB=2\n",
    "  A=indented\n\t B=tab\n",
    "FRACTAL_TASKS_PYTHON_DEFAULT_VERSION=\"3.11\"\nFRACTAL_TASKS_PYTHON_3_11=/opt/py311/bin/python\n",
    "POSTGRES_PASSWORD=p@ss w0rd#frag\nJWT_SECRET_KEY='s3cr3t $HOME `id`'\n",
    "A = 'x' # trailing\nB=\"y\"   \n",
    "export\nexport=1\n",
    "A=ünïcödé ✓\nB=\"日本\"\n",
    "A=1 \t\nB=\t2\n",
    "# only comments\n#\n",
    "",
    "\n\n\n",
    "KEY=value with = equals\nURL=postgresql://u:p@h:5432/db?sslmode=require\n",
    "A=\"a\\\"b\" tail\nB=c\n",
    "A='x'y\nB=2\n",
]

out = []
for text in CASES:
    bindings = [
        {"original": b.original.string, "key": b.key, "value": b.value, "line": b.original.line, "error": b.error}
        for b in parse_stream(io.StringIO(text))
    ]
    values = DotEnv(None, stream=io.StringIO(text), interpolate=True, override=True).dict()
    out.append({"text": text, "bindings": bindings, "values": values})

import importlib.metadata
json.dump({"generator": "python-dotenv " + importlib.metadata.version("python-dotenv"), "cases": out},
          sys.stdout, ensure_ascii=False, indent=1)
print()
