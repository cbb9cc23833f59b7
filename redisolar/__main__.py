"""``python -m redisolar``: the ``redisolar`` command."""

from redisolar.cli import main

if __name__ == "__main__":
    main(prog_name="redisolar")
