#!/bin/bash
# Guest side of `run.sh --cmd`: common setup, load the module, run the command line from cmd.sh.
. "$TD_ROOT/test/vm/guest/setup.sh"
R=/run/td-results
bash "$R/cmd.sh" > "$R/cmd.out" 2>&1
