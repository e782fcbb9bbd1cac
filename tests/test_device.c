/* placeholder: tests of the device kind are being written. */
int main(void) { return 0; }
