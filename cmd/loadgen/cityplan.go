package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/checkin-ledger/ledger/domain/idcard"
)

// The city's fixed facts: the 12 districts of Linyi (PRODUCT.md), the venue
// types in the proportions a city of that size has, names.

// cityDistrict is one administrative district.
type cityDistrict struct {
	code, name string
	lat, lng   float64
	weight     float64 // share of the population
}

var cityDistricts = []cityDistrict{
	{"371302", "兰山区", 35.07, 118.35, 1.6},
	{"371311", "罗庄区", 34.99, 118.28, 0.9},
	{"371312", "河东区", 35.09, 118.40, 0.8},
	{"371321", "沂南县", 35.55, 118.47, 0.9},
	{"371322", "郯城县", 34.61, 118.37, 0.9},
	{"371323", "沂水县", 35.79, 118.63, 1.0},
	{"371324", "兰陵县", 34.86, 118.07, 1.1},
	{"371325", "费县", 35.27, 117.98, 0.8},
	{"371326", "平邑县", 35.51, 117.64, 0.8},
	{"371327", "莒南县", 35.18, 118.84, 0.8},
	{"371328", "蒙阴县", 35.71, 117.95, 0.5},
	{"371329", "临沭县", 34.92, 118.65, 0.6},
}

// cityVenueType is a venue type with how many of it a city has per 1,000
// people, what it is called, and how many of the working people it employs
// (relative weight; 0: nobody works there in the simulation).
type cityVenueType struct {
	typ     string
	per1000 float64
	label   string
	jobs    float64
}

var cityVenueTypes = []cityVenueType{
	{"government", 0.4, "人民政府办公楼", 2},
	{"public_institution", 0.4, "事业单位", 2},
	{"service_hall", 0.3, "政务服务大厅", 1},
	{"school", 1.0, "实验学校", 3},
	{"hospital", 0.3, "人民医院", 3},
	{"library", 0.1, "图书馆", 0.3},
	{"museum", 0.1, "博物馆", 0.3},
	{"cultural_center", 0.1, "文化馆", 0.3},
	{"elderly_care", 0.3, "养老院", 0.5},
	{"restaurant", 6.0, "饭店", 2},
	{"hotel", 0.6, "大酒店", 1},
	{"guesthouse", 0.5, "宾馆", 0.3},
	{"mall", 0.4, "购物中心", 2},
	{"supermarket", 2.5, "超市", 1.5},
	{"farmers_market", 0.8, "农贸市场", 1},
	{"pharmacy", 1.2, "大药房", 0.5},
	{"entertainment", 0.8, "KTV", 0.5},
	{"tourist_site", 0.2, "景区", 0.5},
	{"enterprise", 5.0, "有限公司", 10},
	{"transport_station", 0.3, "汽车站", 1},
	{"public_transport", 2.0, "公交车", 1},
	{"cold_chain", 0.2, "冷链仓库", 1},
	{"logistics", 0.5, "物流园", 2},
	{"residential", 4.0, "小区", 0},
	{"construction_site", 0.4, "建筑工地", 2},
	{"other", 0.4, "便民服务点", 0.3},
}

var (
	surnames   = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
	givenChars = []rune("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国红梅文斌宇浩然欣怡子涵雨轩思睿佳琪晨阳博文嘉")
	streets    = []string{"沂蒙路", "通达路", "解放路", "金雀山路", "银雀山路", "北京路", "上海路", "临西五路", "滨河大道", "启阳路", "人民大街", "新华路"}
	origins    = []string{"北京市朝阳区", "上海市浦东新区", "广东省深圳市", "江苏省南京市", "浙江省杭州市", "河南省郑州市", "天津市滨海新区", "河北省石家庄市"}
)

// personName is a plausible Chinese name.
func personName(rng *rand.Rand) string {
	n := []rune{surnames[rng.IntN(len(surnames))], givenChars[rng.IntN(len(givenChars))]}
	if rng.IntN(3) > 0 {
		n = append(n, givenChars[rng.IntN(len(givenChars))])
	}
	return string(n)
}

// residentNumber is a valid resident ID number for someone born on birth
// and registered in district, with seq telling apart people of the same
// district and birthday.
func residentNumber(district string, birth time.Time, seq int) string {
	body := fmt.Sprintf("%s%s%03d", district, birth.Format("20060102"), seq%1000)
	c, _ := idcard.CheckChar(body)
	return body + string(c)
}

// weighted picks an index of weights with probability proportional to it.
func weighted(rng *rand.Rand, weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := rng.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}
