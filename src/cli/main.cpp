#include <cstdio>

int main() {
  std::puts("wsgate: under construction");
  return 0;
}
