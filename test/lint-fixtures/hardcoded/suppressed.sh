pkill -f x # xtask-lint: allow(broad-process-kill)
# xtask-lint: allow(fixed-tmp-path)
cp a /tmp/fixed
cp a /tmp/not-suppressed
