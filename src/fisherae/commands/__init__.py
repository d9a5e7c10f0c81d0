"""CLI commands, one module per pipeline stage (named as its workflow/rules/*.smk and, where the
stage has library code, its fisherae module); importing them registers them in
``fisherae.commands.registry``, which ``fisherae.cli`` reads."""

from fisherae.commands import (claims, classifier, data, diagnostics, evaluation, fid, figures,  # noqa: F401
                               latent, publish, sampling, table1, training)
