"""The benchmark: halb beside the seed's and the kubeadm guide's pairs on the local lab.

    python -m bench --list            # its parts
    python -m bench --only engine     # one part; --write puts it into results.json and the docs

Each part is a module with `run()` and `table(figures)` (`pair` is the seed/kubeadm/halb comparison
that `make bench` runs); `common` holds what they share, `merge` and `report` keep results.json
and the docs' tables in step.
"""
