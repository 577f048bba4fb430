/* sp_true: the smallest exec target, so fork+exec+exit measures the kernel. */
#include <unistd.h>

int main(void)
{
	_exit(0);
}
