"""The schedule registry: one declaration per job (when it runs), nothing else."""
