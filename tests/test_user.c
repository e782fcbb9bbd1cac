/* placeholder: tests of the user kind are being written. */
int main(void) { return 0; }
