// hiredis (Debian's libhiredis-dev 0.14), wrapped once in SpillwayRedis; nothing else imports it.
#include <hiredis/hiredis.h>
