/* cluster_metrics.h - NMI and ARI between two labelings, as sklearn 1.2
 * normalized_mutual_info_score (average_method="arithmetic") and
 * adjusted_rand_score compute them (metrics.md B3).
 *
 * Labels are non-negative integer codes (any range; only equality matters).
 * Not included: other NMI normalisations, AMI.
 */
#ifndef BMFM_EVAL_CLUSTER_METRICS_H
#define BMFM_EVAL_CLUSTER_METRICS_H

#include <stdint.h>

#include "base/error.h"

/* Both return BMFM_E_INPUT for negative codes, BMFM_E_NOMEM on allocation. */
bmfm_status bmfm_nmi(const int32_t *a, const int32_t *b, int64_t n, double *nmi);
bmfm_status bmfm_ari(const int32_t *a, const int32_t *b, int64_t n, double *ari);

#endif
