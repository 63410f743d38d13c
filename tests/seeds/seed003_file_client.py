# Seed 003_53eaec948bc5f072.txt, 客户端——粘包 (the upload and download
# client of the "sticky packet" section; its servers, upload_interface and
# download_interface, are ported as `file_server --format seed003`, the
# latter with `--serve-file NAME`).
# Changed: the test replaces the port 8080 with the server's; the seed
# defines run() but never calls it, so the one line `run()` is added at the
# end. Nothing else. It uploads (or downloads) once per line of input and
# loops for ever: it ends with EOFError at the end of its input, as it
# would on Ctrl-D.
import socket
import struct
import json
import os

user_info = {'user': None}

client = socket.socket()
client.connect(('127.0.0.1', 8080))


def register():
    while True:
        print('欢迎来到注册功能')
        if not user_info['user']:
            username = input('username').strip()
            pwd = input('pwd').strip()
            re_pwd = input('pwd')
            if re_pwd == pwd:
                with open('user_info.test', 'w',encoding='utf-8')as f:
                    f.write(f'{username}:{pwd}')
                    print(f'{username}注册成功')
                    break
            else:
                print('两次密码不一致')

def login():
    while True:
        print('欢迎来到登录功能:')
        username = input('username:').strip()
        pwd = input('pwd:').strip()
        inp_user_info = f'{username}:{pwd}'
        with open('user_info.test', 'r',encoding='utf-8')as f:
            userinfo = f.read()
            if inp_user_info not in userinfo:
                print('账户或密码错误')
                break
            else:
                print(f'{username}登录成功')
                user_info['user'] = username








def download():
    while True: # 通信循环 (下载)
        msg = input('输入任意键下载:')

        #1.先收4个字节
        head=client.recv(4)

        #2.取出头部的长度
        head_len = struct.unpack('i', head)[0]

        #3.接收头部
        head = client.recv(head_len)

        #4.通过json反序列化拿到原字典
        dic = json.loads(head)

        #5.拿到字典后取出内容真正的长度,以及文件名
        l = dic['size']
        name = dic['name']

        # 准备接收
        count = 0
        data = b''
        with open(name, 'wb')as f:
            while count < l:
                if l < 1024:
                    data_temp = client.recv(l)
                else:
                    if l - count >= 1024:
                        data_temp = client.recv(1024)
                        print(data_temp)
                    else:
                        data_temp = client.recv(l - count)
                data += data_temp
                count += len(data_temp)
            f.write(data)
        print('接收完成')
    client.close()



def upload():
    while True: #通信循环 (上传)
        msg = input('输入任意键上传:')

        #1.加个文件头
        #{'size': os.path.getsize(), name:'xxx.py'}

        #2.计算一下头的长度
        dic = {'size': os.path.getsize('json模块.py'), 'name': 'xxx.py'}

        #3.转成bytes格式, 此处以json模块为例
        dic_s = json.dumps(dic)
        dic_b = bytes(dic_s,encoding='utf-8')

        #4.获得长度
        dic_b_len = len(dic_b)

        # 通过struct模块 将数据长度打包成固定长度字节
        obj = struct.pack('i', dic_b_len)

        # 5.发送四个字节
        client.send(obj)

        # 6.发送头部内容
        client.send(dic_b)

        # 7.直接以+形式打开文件,就不需要转换了  rb模式
        with open('json模块.py', 'rb')as f:
            #conn.send(f.read()) 不能这样运行,如果文件过大,内存无法负载
        # 注:文件是可以迭代的
            for line in f:
                client.send(line)
        data = client.recv(1024)
        print(data.decode())
    client.close()


func_dic = {'1': register,
            '2': login,
            '3': download,
            '4': upload
            }

def run():
    while True:
        print('''
        1. 注册
        2. 登录
        3. 下载
        4. 上传
        q. 退出
        ''')
        choice = input('请选择需要的功能:')
        if choice == 'q':
            break

        if choice not in func_dic:
            print('选择不存在')
            continue
        func_dic.get(choice)()


run()
