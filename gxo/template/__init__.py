"""Templates: sandboxed Jinja2 rendering, reference analysis, secrets and redaction."""

from gxo.template.engine import TemplateEngine, is_template, iter_template_strings
from gxo.template.filters import is_truthy
from gxo.template.references import find_references
from gxo.template.secrets import REDACTED, SecretRegistry, SecretStr

__all__ = [
    "REDACTED",
    "SecretRegistry",
    "SecretStr",
    "TemplateEngine",
    "find_references",
    "is_template",
    "is_truthy",
    "iter_template_strings",
]
