/*
 * replay.c — runs a libFuzzer target over every file in a corpus directory
 * without libFuzzer, so the normal (gcc, ASan) test suite checks each parser
 * against its corpus.  Usage: fuzz_X-replay DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if(!f) {
		perror(path);
		return -1;
	}
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for(;;) {
		if(len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			if(!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		if(n == 0) {
			break;
		}
		len += n;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0;
	for(int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if(!d) {
			fprintf(stderr, "%s: cannot open corpus directory\n", argv[i]);
			return 1;
		}
		struct dirent *e;
		while((e = readdir(d))) {
			if(e->d_name[0] == '.') {
				continue;
			}
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			struct stat st;
			if(stat(path, &st) || !S_ISREG(st.st_mode)) {
				continue;
			}
			if(run_file(path)) {
				closedir(d);
				return 1;
			}
			files++;
		}
		closedir(d);
	}
	if(files == 0) {
		fprintf(stderr, "no corpus files found: a fuzz target needs a seed corpus\n");
		return 1;
	}
	printf("replayed %d corpus files without a crash\n", files);
	return 0;
}
