"""The fault-injection suite: real PostgreSQL (fsync on), Redis (append-only file, fsync always),
Celery workers, a web server and Label Studio, broken at randomised (seeded) moments.

    python -m faults --runs 10 [--seed 1] [--scenario NAME ...]     (make faults: 10 runs x 10 scenarios)

Each scenario run builds its own data (a source, a batch, a Label Studio project, a test set), injects
its fault while the work is under way, lets the system recover (workers restarted, one sweep, one
pull) and then checks the invariants of issue #12:

- turns equal a clean reference run of the same input (count and content hash);
- rejected lines are exactly the poison lines;
- exactly one Label Studio task per labelling item;
- local annotations equal Label Studio's export;
- no job is left running;
- every frozen test-set version hashes to its sha256.

It prints a table of scenarios x runs x violations (recorded in docs/security.md, "Fault-injection suite"). The services
are those of scripts/services.sh and scripts/labelstudio.sh; the suite uses a database, a Redis and
workers of its own (scripts/faults.sh sets them up).
"""
