"""Builds a stand-in wheel for `langchain-protocol` (test support only, never shipped).

langchain-core 1.6 imports about two dozen TypedDicts from `langchain_protocol.protocol` (the typed
shapes of its streaming events). Where the package index cannot serve that package (this project's
CI reaches a local mirror that lacks it), the Python example's test offers this wheel with
`--find-links`. Its version sorts below every real release, so pip picks the real package wherever
an index has it. At run time the names are plain TypedDicts: langchain only annotates with them and
builds dicts through them, so behaviour is the same; nothing of the data path depends on it.

Usage: python build_wheel.py OUT_DIR  (prints the wheel's path)
"""

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

NAME = "langchain_protocol"
VERSION = "0.0.17+wardenshim"
NAMES = [
    "BlockDelta", "BlockDeltaFields", "ContentBlock", "ContentBlockDelta", "ContentBlockDeltaData",
    "ContentBlockFinishData", "ContentBlockStartData", "DataDelta", "FinalizedContentBlock",
    "InvalidToolCall", "LifecycleCause", "MessageFinishData", "MessageMetadata", "MessageStartData",
    "MessagesData", "ReasoningContentBlock", "ReasoningDelta", "ServerToolCall", "ServerToolCallChunk",
    "TextContentBlock", "TextDelta", "ToolCall", "ToolCallChunk", "UsageInfo",
]

# Imported from the package itself by langgraph-sdk (annotations only).
TOP_NAMES = ["Channel", "Event", "Namespace", "SubscribeParams"]


def typed_dicts(names: list[str]) -> str:
    return "".join(f"class {n}(TypedDict, total=False):\n    pass\n\n\n" for n in names)


HEADER = '"""Stand-in for langchain-protocol (Agent Warden test support): open TypedDicts."""\nfrom typing import TypedDict\n\n'
INIT = HEADER + typed_dicts(TOP_NAMES)
METADATA = f"Metadata-Version: 2.1\nName: langchain-protocol\nVersion: {VERSION}\nSummary: test stand-in\n"
WHEEL = "Wheel-Version: 1.0\nGenerator: agent-warden-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    info = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": INIT.encode(),
        f"{NAME}/protocol.py": (HEADER + typed_dicts(NAMES)).encode(),
        f"{info}/METADATA": METADATA.encode(),
        f"{info}/WHEEL": WHEEL.encode(),
    }
    record = "\n".join(record_line(p, d) for p, d in files.items()) + f"\n{info}/RECORD,,\n"
    wheel = out / f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr(f"{info}/RECORD", record)
    print(wheel)


if __name__ == "__main__":
    main()
