/* Force-included (g++ -include) when building Caffe 1.0 + SSD against OpenCV 4.
 *
 * OpenCV 4 dropped the old C API constants that Caffe's SSD additions still use.
 * Written for this project; maps each old name onto its OpenCV 4 equivalent.
 */
#ifndef FCNKIT_OPENCV4_COMPAT_H_
#define FCNKIT_OPENCV4_COMPAT_H_
#ifdef __cplusplus
#include <opencv2/core/version.hpp>
#if CV_VERSION_MAJOR >= 4
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/imgproc/types_c.h>            /* CV_BGR2GRAY, CV_THRESH_*, ... */
#include <opencv2/imgcodecs/legacy/constants_c.h> /* CV_LOAD_IMAGE_*, CV_IMWRITE_* */
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/legacy/constants_c.h>   /* CV_CAP_PROP_* */
#ifndef CV_FOURCC
#define CV_FOURCC(c1, c2, c3, c4) cv::VideoWriter::fourcc((c1), (c2), (c3), (c4))
#endif
#ifndef CV_FILLED
#define CV_FILLED cv::FILLED
#endif
#ifndef CV_AA
#define CV_AA cv::LINE_AA
#endif
#endif /* CV_VERSION_MAJOR >= 4 */
#endif /* __cplusplus */
#endif /* FCNKIT_OPENCV4_COMPAT_H_ */
