"""``gxo test``: discover ``*.test.gxo.yaml`` playbooks, run them, report PASS/FAIL.

One concern per file: :mod:`.discovery` (finding and selecting test files),
:mod:`.execute` (running one test file through the engine), :mod:`.report`
(the ``=== RUN`` / ``--- PASS`` text), :mod:`.diff` (expected-vs-actual diffs,
also used by the ``test:assert`` module), :mod:`.junit` (JUnit XML),
:mod:`.watch` (``--watch``) and :mod:`.runner` (the command itself).

Importing this package is cheap: modules import it at registry load time.
"""
