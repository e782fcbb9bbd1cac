/* placeholder: tests of the room kind are being written. */
int main(void) { return 0; }
