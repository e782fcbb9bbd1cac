/*
 * luatest.h - `holdfast test`: the runner of Lua kinds' test files
 * (docs/kinds/lua.md has the file API). Main thread only.
 */
#ifndef HF_CMD_LUATEST_H
#define HF_CMD_LUATEST_H

/* holdfast test [--kinds DIR] [FILES...]: prints "ok - NAME" or
 * "FAIL - NAME: message (file:line)" per test, then "N passed, N failed".
 * Returns the exit status: 0, 1 (a failure, or a file or kind that did
 * not load) or 2 (bad options). */
int hf_cmd_test(int argc, char **argv);

#endif
