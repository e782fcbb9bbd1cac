/* placeholder: tests of the store kind are being written. */
int main(void) { return 0; }
