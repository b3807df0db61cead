# Summarises a `cargo test` log's failures in a few lines (the suite binary, the test, where
# it panicked and the panic's first line), so that the tail of a CI log names them.
# Usage: awk -v mpi=openmpi -f .ci/failures.awk LOG
/^ *Running / { suite = $2; next }
/^test .* \.\.\. FAILED$/ { printf "FAILED [%s] %s: %s\n", mpi, suite, $2; next }
/^thread '.*' (\([0-9]+\) )?panicked at / { where = $0; sub(/^thread /, "", where); getline msg
  printf "  %s %s\n", substr(where, 1, 160), substr(msg, 1, 200); next }
/^error(\[E[0-9]+\])?: / { printf "ERROR [%s] %s\n", mpi, substr($0, 1, 200) }
