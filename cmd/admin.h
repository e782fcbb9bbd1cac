/*
 * admin.h - offline commands on a data directory: `holdfast inspect` and
 * `holdfast recover` (cmd/admin.c). Each returns the process exit status.
 */
#ifndef HF_CMD_ADMIN_H
#define HF_CMD_ADMIN_H

#include <stdio.h>

int hf_cmd_inspect(int argc, char **argv);
int hf_cmd_recover(int argc, char **argv);
void hf_cmd_admin_usage(FILE *out);

#endif
