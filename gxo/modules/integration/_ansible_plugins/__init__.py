"""Ansible plugins used by ``ansible:playbook`` (loaded by ansible from this directory, by path)."""
