/* payload.h - kept so that files not yet moved to views.h still build: the
 * payload builders and JSON helpers are declared in views.h, the views
 * part's one public header. Include views.h instead. */
#ifndef GW_PAYLOAD_H
#define GW_PAYLOAD_H

#include "views.h"

#endif
