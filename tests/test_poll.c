/* placeholder: tests of the poll kind are being written. */
int main(void) { return 0; }
