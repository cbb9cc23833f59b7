# The dashboard (redisolar/web): its browser tests need Debian's Chromium, driven by Playwright for Python.
# Playwright's own browser download (`playwright install`) is never used.
.PHONY: browser test-web

CHROMIUM ?= /usr/bin/chromium

browser:  ## Install Debian's Chromium for the dashboard's browser tests (once; quick when present)
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "chromium: $$($(CHROMIUM) --version 2>/dev/null || echo $(CHROMIUM))"; \
	else \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi

test-web: env browser  ## Run the dashboard's browser tests (screenshots in artifacts/screenshots/)
	$(BIN)/python -m pytest tests/test_dashboard.py
