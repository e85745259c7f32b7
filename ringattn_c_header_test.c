/* ringattn_c.h is plain C: this file is compiled as C and linked against
 * the library. */
#include <stdio.h>
#include <string.h>

#include "ringattn_c.h"

int main(void) {
  ringattn_world* world = NULL;
  if (ringattn_threads_world_create(0, 1.0, &world) != RINGATTN_INVALID_ARGUMENT ||
      strstr(ringattn_last_error(), "world is 0") == NULL) {
    fprintf(stderr, "FAIL: world 0 accepted or unexplained: %s\n", ringattn_last_error());
    return 1;
  }
  if (ringattn_threads_world_create(1, 1.0, &world) != RINGATTN_OK) {
    fprintf(stderr, "FAIL: %s\n", ringattn_last_error());
    return 1;
  }
  ringattn_world_destroy(world);
  printf("ok\n");
  return 0;
}
