"""Files sublim writes and reads, one home for each: `sublim.io.files` (atomic writes, valid JSON, locks,
checked reads, package versions) and `sublim.io.outputs` (the output guard every writing command uses:
`claim_output`, `check_output`, stamps, `out_argument`). Import from `sublim.io`: the names below are the API.
"""

from sublim.io.files import (
    atomic_path,
    file_lock,
    file_problem,
    json_safe,
    output_file_problem,
    package_versions,
    read_jsonl,
    read_text,
    write_atomic,
    write_json,
)
from sublim.io.outputs import (
    LOCK,
    STAMP,
    Claim,
    check_output,
    check_separate,
    claim_output,
    differences,
    file_sha256,
    identity_hash,
    out_argument,
    out_problem,
)

__all__ = [
    "LOCK",
    "STAMP",
    "Claim",
    "atomic_path",
    "check_output",
    "check_separate",
    "claim_output",
    "differences",
    "file_lock",
    "file_problem",
    "file_sha256",
    "identity_hash",
    "json_safe",
    "out_argument",
    "out_problem",
    "output_file_problem",
    "package_versions",
    "read_jsonl",
    "read_text",
    "write_atomic",
    "write_json",
]
