// Lamplighter example WAGI handler: a plain-text greeting, customisable with the GREETING variable.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const char *greeting = getenv("GREETING");
  if (greeting == NULL || *greeting == '\0') greeting = "Hello";
  printf("content-type: text/plain; charset=utf-8\n\n%s from Lamplighter!\n", greeting);
  return 0;
}
