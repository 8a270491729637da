"""One error hierarchy: every outcome a user can act on is a FactoryctlError that carries its
exit code, and one handler (cli.run) turns it into `error: <message>` and that code.

Exit codes (README, `factoryctl --help`): 0 success; 1 invalid input, failed checks or an
engine failure; 2 changes or drift present; 64 usage error (sysexits.h EX_USAGE, so that 2
keeps one meaning); 130 interrupted (128 + SIGINT, as shells report it).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    CHANGES = 2
    USAGE = 64
    INTERRUPTED = 130


class FactoryctlError(Exception):
    """A failure the user can act on; its message says what and how to fix it."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageProblem(FactoryctlError):
    """The command line asks for something impossible (a bad option, path or value)."""

    exit_code = ExitCode.USAGE


class InputRefused(FactoryctlError):
    """The factory file has errors, so the command did nothing. The findings (with positions
    and hints) are shown first, then `error: factory.yaml has errors: <what was not done>`."""

    def __init__(self, refusal: str, findings: list, source: str | None):
        super().__init__(f"factory.yaml has errors: {refusal}")
        self.findings = findings
        self.source = source  # the file's text, for the excerpt under each finding


class EngineFailure(FactoryctlError):
    """Terraform, Ansible, SSH or another engine failed; the message names the run's logs."""


class Interrupted(FactoryctlError):
    """Ctrl-C: what was in flight was stopped cleanly; the next run resumes."""

    exit_code = ExitCode.INTERRUPTED
