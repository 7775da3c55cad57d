/* main.c - espline command line (subcommands arrive with the device layer). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		puts("espline 0.1.0");
		return 0;
	}
	fprintf(stderr, "usage: espline --version\n");
	return 2;
}
